# Training: one job per experiment variant (and seed), all initialisations inside.
# Outputs are content-addressed and cached between workflows (`--cache`).


rule train_e1:
    output:
        h5="results/train/e1/{key}.h5",
    log:
        "logs/train/e1/{key}.log",
    # Cached between workflows (`--cache`); Snakemake allows no benchmark directive on
    # cached rules, so the CLI logs the job's wall time instead.
    cache: "omit-software"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        spec=spec_json,
    shell:
        "equivdyn train --spec {params.spec:q} --out {output.h5:q} > {log:q} 2>&1"
