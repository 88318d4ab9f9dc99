# Figures: PDF + PNG for people, JSON with the numbers behind them for checks.


rule plot_fig2:
    input:
        **{f"traj_{m}": path_of(E1_TRAIN[m]) for m in E1_METHODS},
        **{f"spec_{m}": path_of(E1_FIT[m]) for m in E1_METHODS},
        compare=path_of(E1_COMPARE),
    output:
        pdf="results/figures/fig2_omd_ogd_bm.pdf",
        png=report(
            "results/figures/fig2_omd_ogd_bm.png",
            caption="../workflow/report/fig2.rst",
            category="Figure 2: OMD vs OGD vs BM",
        ),
        json=report(
            "results/figures/fig2_omd_ogd_bm.json",
            caption="../workflow/report/fig2_json.rst",
            category="Figure 2: OMD vs OGD vs BM",
        ),
    log:
        "logs/figures/fig2.log",
    benchmark:
        "benchmarks/figures/fig2.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "equivdyn plot fig2 "
        + cli_inputs(
            ["compare"] + [f"{s}_{m}" for s in ("traj", "spec") for m in E1_METHODS]
        )
        + " --out-prefix results/figures/fig2_omd_ogd_bm > {log:q} 2>&1"


rule index:
    output:
        tsv=INDEX,
    log:
        "logs/index.log",
    benchmark:
        "benchmarks/index/index.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=200,
    params:
        plan=json.dumps({path: spec for path, spec in PLAN.values()}, sort_keys=True),
    shell:
        "equivdyn index --plan {params.plan:q} --out {output.tsv:q} > {log:q} 2>&1"
