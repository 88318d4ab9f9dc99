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
    params:
        inputs=cli_named_inputs,
    shell:
        "equivdyn plot fig2 {params.inputs}"
        " --out-prefix results/figures/fig2_omd_ogd_bm > {log:q} 2>&1"


E2_FIGURE_INPUTS = {
    "compare": path_of(E2_COMPARE),
    **{f"traj_{e2_name(*hs)}": path_of(k) for hs, k in E2_TRAIN.items()},
    **{f"spec_{e2_name(*hs)}": path_of(k) for hs, k in E2_FIT.items()},
}


rule plot_fig3:
    input:
        **E2_FIGURE_INPUTS,
    output:
        pdf="results/figures/fig3_fcn_width.pdf",
        png=report(
            "results/figures/fig3_fcn_width.png",
            caption="../workflow/report/fig3.rst",
            category="Figure 3: FCN width on MNIST",
        ),
        json=report(
            "results/figures/fig3_fcn_width.json",
            caption="../workflow/report/fig3_json.rst",
            category="Figure 3: FCN width on MNIST",
        ),
    log:
        "logs/figures/fig3.log",
    benchmark:
        "benchmarks/figures/fig3.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        inputs=cli_named_inputs,
    shell:
        "equivdyn plot fig3 {params.inputs}"
        " --out-prefix results/figures/fig3_fcn_width > {log:q} 2>&1"


rule plot_figS_fcn_seeds:
    input:
        **E2_FIGURE_INPUTS,
    output:
        pdf="results/figures/figS_fcn_seeds.pdf",
        png=report(
            "results/figures/figS_fcn_seeds.png",
            caption="../workflow/report/figS_fcn_seeds.rst",
            category="Figure S: FCN between-seed spectra",
        ),
        json="results/figures/figS_fcn_seeds.json",
    log:
        "logs/figures/figS_fcn_seeds.log",
    benchmark:
        "benchmarks/figures/figS_fcn_seeds.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        inputs=cli_named_inputs,
    shell:
        "equivdyn plot figS_fcn_seeds {params.inputs}"
        " --out-prefix results/figures/figS_fcn_seeds > {log:q} 2>&1"


rule plot_fig5:
    input:
        **{f"traj_{e4_name(*k)}": path_of(v) for k, v in E4_TRAIN.items()},
        **{f"spec_{e4_name(*k)}": path_of(v) for k, v in E4_FIT.items()},
        **{f"long_{setup}": path_of(v) for setup, v in E4_LONG.items()},
        compare=path_of(E4_COMPARE),
    output:
        pdf="results/figures/fig5_grokking.pdf",
        png=report(
            "results/figures/fig5_grokking.png",
            caption="../workflow/report/fig5.rst",
            category="Figure 5: grokking transformers",
        ),
        json="results/figures/fig5_grokking.json",
    log:
        "logs/figures/fig5.log",
    benchmark:
        "benchmarks/figures/fig5.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        inputs=cli_named_inputs,
    shell:
        "equivdyn plot fig5 {params.inputs}"
        " --out-prefix results/figures/fig5_grokking > {log:q} 2>&1"


E3_FIGURE_INPUTS = {
    **{f"traj_{e3_name(*k)}": path_of(v) for k, v in E3_TRAIN.items()},
    **{f"distances_{net}": path_of(v) for net, v in E3_DISTANCES.items()},
}


rule plot_fig4:
    input:
        **E3_FIGURE_INPUTS,
    output:
        pdf="results/figures/fig4_cnn_early.pdf",
        png=report(
            "results/figures/fig4_cnn_early.png",
            caption="../workflow/report/fig4.rst",
            category="Figure 4: early phase of CNN training",
        ),
        json="results/figures/fig4_cnn_early.json",
    log:
        "logs/figures/fig4.log",
    benchmark:
        "benchmarks/figures/fig4.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        inputs=cli_named_inputs,
    shell:
        "equivdyn plot fig4 {params.inputs}"
        " --out-prefix results/figures/fig4_cnn_early > {log:q} 2>&1"


rule plot_figS_cnn_epochs:
    input:
        **E3_FIGURE_INPUTS,
    output:
        pdf="results/figures/figS_cnn_epochs.pdf",
        png=report(
            "results/figures/figS_cnn_epochs.png",
            caption="../workflow/report/figS_cnn_epochs.rst",
            category="Figure 4: early phase of CNN training",
        ),
        json="results/figures/figS_cnn_epochs.json",
    log:
        "logs/figures/figS_cnn_epochs.log",
    benchmark:
        "benchmarks/figures/figS_cnn_epochs.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        inputs=cli_named_inputs,
    shell:
        "equivdyn plot figS_cnn_epochs {params.inputs}"
        " --out-prefix results/figures/figS_cnn_epochs > {log:q} 2>&1"


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
