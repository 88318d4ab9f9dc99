# Conjugacy tests: distances between spectra and randomisation controls.


rule compare_e1:
    input:
        unpack(named_inputs),
    output:
        json="results/compare/e1/{key}.json",
    log:
        "logs/compare/e1/{key}.log",
    benchmark:
        "benchmarks/compare/e1/{key}.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        spec=spec_json,
    shell:
        "equivdyn compare --spec {params.spec:q} "
        + cli_inputs(E1_METHODS)
        + " --out {output.json:q} > {log:q} 2>&1"
