# Data: verify a dataset (a local copy named in config, data/, or a download) and write
# it under its content key.  A wrong checksum stops here: nothing downstream runs.


rule data_mnist:
    input:
        source=lambda wildcards: config["data"]["mnist"] or [],
    output:
        npz=MNIST,
    log:
        DATASET_LOGS["mnist"],
    benchmark:
        "benchmarks/data/mnist.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=DOWNLOAD_RUNTIME,
    params:
        source=lambda wildcards, input: source_option(input.source or None),
    shell:
        "equivdyn data mnist {params.source} --out {output.npz:q} > {log:q} 2>&1"


rule data_cifar10:
    input:
        source=cifar10_source,
    output:
        npz=CIFAR10,
    log:
        DATASET_LOGS["cifar10"],
    benchmark:
        "benchmarks/data/cifar10.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=DOWNLOAD_RUNTIME,
    params:
        source=cifar10_source_option,
    shell:
        "equivdyn data cifar10 {params.source} --out {output.npz:q} > {log:q} 2>&1"
