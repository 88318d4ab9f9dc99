# equivdyn: identify equivalent training dynamics (Redman et al., NeurIPS 2024).
# Targets: `all` (every figure) and one per figure of every registered experiment
# (`fig2`, `fig3`, `figS_fcn_seeds`, `fig4`, `figS_cnn_epochs`, `fig5`).  See README.md.

import os

from snakemake.utils import min_version, validate

from equivdyn.experiments import PLUGINS_ENV, load_plugins, plugin_sections

# 9.17: `cache: "omit-software"` applies to its own rule only (see pyproject.toml).
min_version("9.17")


configfile: "config.yaml"


# Experiments from other packages (config `plugins`) register themselves when imported;
# their jobs import them too (PLUGINS_ENV).  Each checks its own config section.
load_plugins(config.get("plugins", []))
os.environ[PLUGINS_ENV] = ",".join(config.get("plugins", []))
_plugin_config = plugin_sections(config)
validate(config, "workflow/schemas/config.schema.json", set_default=True)
config.update(_plugin_config)


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
    explain_missing_datasets()


rule all:
    default_target: True
    input:
        [f for files in TARGETS.values() for f in files],
        INDEX,
        planned_results,


# One target per figure name (a target may gather several figures of an experiment).
for _target, _files in TARGETS.items():

    rule:
        name:
            _target
        input:
            _files,
            INDEX,
