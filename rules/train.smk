# Training: one job per experiment variant (and seed), all initialisations inside.
# Outputs are content-addressed and cached between workflows (`--cache`).


rule train_e1:
    output:
        h5="results/train/e1/{key}.h5",
    params:
        spec=spec_json,
    log:
        "logs/train/e1/{key}.log",
    threads: 1
    resources:
        mem_mb=500,
    # Cached between workflows (`--cache`); Snakemake allows no benchmark directive on
    # cached rules, so the CLI logs the job's wall time instead.
    cache: "omit-software"
    conda:
        "../envs/equivdyn.yaml"
    shell:
        "equivdyn train --spec {params.spec:q} --out {output.h5:q} > {log:q} 2>&1"
