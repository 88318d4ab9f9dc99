# Koopman fitting: one spectrum file per trajectory file.


rule fit:
    input:
        trajectory=input_path("trajectory"),
    output:
        h5="results/fit/{experiment}/{key}.h5",
    log:
        "logs/fit/{experiment}/{key}.log",
    # Cached between workflows (`--cache`); Snakemake allows no benchmark directive on
    # cached rules, so the CLI logs the job's wall time instead.
    cache: "omit-software"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=planned_mem_mb,
        runtime=planned_runtime,
    params:
        spec=spec_json,
    shell:
        "equivdyn fit --spec {params.spec:q} --input {input.trajectory:q}"
        " --out {output.h5:q} > {log:q} 2>&1"
