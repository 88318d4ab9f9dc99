# Conjugacy tests: distances between spectra, randomisation controls, permutation tests;
# for E3, the matrices of distances between the spectra of windows and of epochs.


rule compare:
    input:
        unpack(named_inputs),
    output:
        json="results/compare/{experiment}/{key}.json",
    log:
        "logs/compare/{experiment}/{key}.log",
    benchmark:
        "benchmarks/compare/{experiment}/{key}.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=planned_mem_mb,
        runtime=planned_runtime,
    params:
        spec=spec_json,
        inputs=cli_named_inputs,
    shell:
        "equivdyn compare --spec {params.spec:q} {params.inputs} --out {output.json:q}"
        " > {log:q} 2>&1"


rule distances:
    input:
        unpack(named_inputs),
    output:
        json="results/distances/{experiment}/{key}.json",
    log:
        "logs/distances/{experiment}/{key}.log",
    benchmark:
        "benchmarks/distances/{experiment}/{key}.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=planned_mem_mb,
        runtime=planned_runtime,
    params:
        spec=spec_json,
        inputs=cli_named_inputs,
    shell:
        "equivdyn distances --spec {params.spec:q} {params.inputs} --out {output.json:q}"
        " > {log:q} 2>&1"
