# The HTML report (`snakemake TARGETS --report FILE`): it holds the figures of its
# targets that are built, and its landing page (workflow/report/workflow.rst) names those
# that are not (say, a figure whose data cannot be had offline).
#
# Snakemake stops a report at the first file marked for it (rule plot marks each
# figure's PNG and JSON) that does not exist.  The mark belongs to the rule's output
# pattern, the same for every figure, and what is built is known only when the report is
# made, which may follow a run in the same call (--report-after-run).  So when the report
# is made, once Snakemake has planned the jobs of its targets, the marks of the figures
# not built are taken off those jobs' files.  Nothing changes for a run or a dry run.

#: Figures (equivdyn.plan.Figure) of the report's targets that are not built: filled
#: when the report is made, read by its landing page.
REPORT_NOT_BUILT = []


async def leave_unbuilt_figures_out(dag):
    """Unmark for the report the files of every figure of ``dag`` that is not built."""
    not_built = []
    plots = [job for job in dag.jobs if job.rule is rules.plot.rule]
    for job in plots:
        marked = [f for f in job.output if "report" in f.flags]
        if all([await f.exists() for f in marked]):
            continue
        for f in marked:
            del f.flags["report"]
        not_built.append(FIGURES[job.wildcards.figure])
    REPORT_NOT_BUILT[:] = sorted(not_built, key=lambda fig: fig.stem)
    if not_built:
        named = (f"{fig.stem} (snakemake {fig.target})" for fig in REPORT_NOT_BUILT)
        logger.warning("Figures not built, left out of the report: " + ", ".join(named))


def report_built_figures_only(create_report):
    """``Workflow.create_report`` that leaves out the figures not built.

    Snakemake 9 makes a report by planning the jobs of the targets, then calling
    ``snakemake.report.auto_report(dag, ...)``, which it looks up at that moment; during
    the call, the lookup finds a function that first unmarks the figures not built.
    """

    def create(*args, **kwargs):
        import snakemake.report as report_module

        auto_report = report_module.auto_report

        async def built_figures_only(dag, *rest, **options):
            await leave_unbuilt_figures_out(dag)
            return await auto_report(dag, *rest, **options)

        report_module.auto_report = built_figures_only
        try:
            return create_report(*args, **kwargs)
        finally:
            report_module.auto_report = auto_report

    return create


workflow.create_report = report_built_figures_only(workflow.create_report)
