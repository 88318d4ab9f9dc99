# equivdyn: identify equivalent training dynamics (Redman et al., NeurIPS 2024).
# Targets: `all` (every figure), `fig2`, `fig3`, `figS_fcn_seeds`, `fig4`,
# `figS_cnn_epochs`, `fig5`.  See README.md.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/koopman.smk"
include: "rules/conjugacy.smk"
include: "rules/figures.smk"


onsuccess:
    protect_cache_entries()


onerror:
    protect_cache_entries()


rule all:
    default_target: True
    input:
        [f for files in FIGURES.values() for f in files],
        INDEX,
        planned_results,


rule fig2:
    input:
        FIGURES["fig2"],
        INDEX,


rule fig3:
    input:
        FIGURES["fig3"],
        INDEX,


rule figS_fcn_seeds:
    input:
        FIGURES["figS_fcn_seeds"],
        INDEX,


rule fig5:
    input:
        FIGURES["fig5"],
        INDEX,


rule fig4:
    input:
        FIGURES["fig4"],
        INDEX,


rule figS_cnn_epochs:
    input:
        FIGURES["figS_cnn_epochs"],
        INDEX,
