# Conjugacy tests: distances between spectra, randomisation controls, permutation tests.


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
        mem_mb=1000,
    params:
        spec=spec_json,
        inputs=cli_named_inputs,
    shell:
        "equivdyn compare --spec {params.spec:q} {params.inputs} --out {output.json:q}"
        " > {log:q} 2>&1"
