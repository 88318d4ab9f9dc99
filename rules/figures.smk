# Figures: PDF + PNG for people, JSON with the numbers behind them for checks.  One rule
# for every figure of every registered experiment; what a figure reads, its caption and
# its report category come from the plan (equivdyn.plan.Figure).  The HTML report holds
# the figures that are built and names those that are not (rules/report.smk).


include: "report.smk"


rule plot:
    input:
        unpack(figure_inputs),
    output:
        pdf="results/figures/{figure}.pdf",
        png=report(
            "results/figures/{figure}.png",
            caption="../workflow/report/figure.rst",
            category=lambda wildcards: FIGURES[wildcards.figure].category,
        ),
        json=report(
            "results/figures/{figure}.json",
            caption="../workflow/report/figure_json.rst",
            category=lambda wildcards: FIGURES[wildcards.figure].category,
        ),
    log:
        "logs/figures/{figure}.log",
    benchmark:
        "benchmarks/figures/{figure}.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards: FIGURES[wildcards.figure].mem_mb,
        runtime=MIN_RUNTIME,
    params:
        inputs=figure_cli_inputs,
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        json_caption=lambda wildcards: FIGURES[wildcards.figure].json_caption,
    shell:
        "equivdyn plot {wildcards.figure} {params.inputs}"
        " --out-prefix results/figures/{wildcards.figure} > {log:q} 2>&1"


rule index:
    output:
        tsv=INDEX,
    log:
        "logs/index.log",
    benchmark:
        "benchmarks/index/index.tsv"
    threads: 1
    resources:
        mem_mb=200,
        runtime=MIN_RUNTIME,
    params:
        # The digest of the plan, so that a changed plan reruns the index; the plan itself
        # (tens of kB at paper scale) goes to the CLI in a file, not on its command line.
        plan=lambda wildcards: plan_digest(),
    run:
        with plan_file(resources.tmpdir) as plan:
            shell(
                "equivdyn index --plan {plan:q} --out {output.tsv:q} > {log:q} 2>&1"
            )
