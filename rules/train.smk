# Training: one job per experiment variant and seed, all initialisations inside.
# Outputs are content-addressed and cached between workflows (`--cache`).


rule train:
    input:
        unpack(named_inputs),
    output:
        h5="results/train/{experiment}/{key}.h5",
    log:
        "logs/train/{experiment}/{key}.log",
    # Cached between workflows (`--cache`); Snakemake allows no benchmark directive on
    # cached rules, so the CLI logs the job's wall time instead.
    cache: "omit-software"
    conda:
        "../envs/equivdyn.yaml"
    threads: planned_threads
    resources:
        mem_mb=planned_mem_mb,
        runtime=planned_runtime,
        # a Slurm profile turns this into --gpus=1 (0: none asked for)
        gpu=planned_gpus,
    params:
        spec=spec_json,
        inputs=cli_named_inputs,
    shell:
        "equivdyn train --spec {params.spec:q} {params.inputs} --out {output.h5:q}"
        " > {log:q} 2>&1"
