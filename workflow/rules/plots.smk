rule plot_mask:
    output:
        png=report(
            path(layout.FIGURE, name="mask", ext="png"),
            caption="../report/mask.rst",
            category="Model",
        ),
        pdf=path(layout.FIGURE, name="mask", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/mask.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/plot_mask.py"


rule plot_task_diversity:
    input:
        seeds=rules.aggregate_eval.output.summary_seeds,
        thresholds=rules.aggregate_eval.output.thresholds,
    output:
        png=report(
            path(layout.FIGURE, name="task_diversity", ext="png"),
            caption="../report/task_diversity.rst",
            category="Task diversity",
        ),
        pdf=path(layout.FIGURE, name="task_diversity", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/task_diversity.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **FAMILY_PARAMS,
    script:
        "../scripts/plot_task_diversity.py"


rule plot_losses:
    input:
        seeds=rules.aggregate_eval.output.summary_seeds,
        train_log=rules.aggregate_train_log.output[0],
    output:
        png=report(
            path(layout.FIGURE, name="losses", ext="png"),
            caption="../report/losses.rst",
            category="Training",
        ),
        pdf=path(layout.FIGURE, name="losses", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/losses.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/plot_losses.py"


rule plot_implied_prior:
    input:
        samples=lambda wc: resample_files(wc.M, SEEDS[0]),
        reference=path(layout.REFERENCE),
        pool=pool_file,
    output:
        png=report(
            path(layout.FIGURE, name="implied_prior_M{M}", ext="png"),
            caption="../report/implied_prior.rst",
            category="Predictive resampling",
            subcategory="Implied prior",
        ),
        pdf=path(layout.FIGURE, name="implied_prior_M{M}", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/implied_prior_M{{M}}.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **DRAW_PARAMS,
        dim=config["dim"],
        n_dims=config["resample"]["plot_dims"],
        seed=SEEDS[0],
    script:
        "../scripts/plot_implied_prior.py"


rule plot_posterior:
    input:
        summary=rules.aggregate_resample.output.summary,
    output:
        png=report(
            path(layout.FIGURE, name="posterior", ext="png"),
            caption="../report/posterior.rst",
            category="Predictive resampling",
            subcategory="Posterior",
        ),
        pdf=path(layout.FIGURE, name="posterior", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/posterior.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **FAMILY_PARAMS,
    script:
        "../scripts/plot_posterior.py"


rule plot_in_context:
    input:
        rules.aggregate_in_context.output.seeds,
    output:
        png=report(
            path(layout.FIGURE, name="in_context", ext="png"),
            caption="../report/in_context.rst",
            category="Task diversity",
        ),
        pdf=path(layout.FIGURE, name="in_context", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/in_context.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **FAMILY_PARAMS,
        context_length=config["context_length"],
        max_length=trained_length(config),
    script:
        "../scripts/plot_in_context.py"


rule plot_posterior_marginals:
    input:
        samples=lambda wc: resample_files(wc.M, SEEDS[0]),
        reference=path(layout.REFERENCE),
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        png=report(
            path(layout.FIGURE, name="posterior_marginals_M{M}", ext="png"),
            caption="../report/posterior_marginals.rst",
            category="Predictive resampling",
            subcategory="Posterior marginals",
        ),
        pdf=path(layout.FIGURE, name="posterior_marginals_M{M}", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/posterior_marginals_M{{M}}.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **FAMILY_PARAMS,
        n_dims=config["resample"]["plot_dims"],
        seed=SEEDS[0],
    script:
        "../scripts/plot_posterior_marginals.py"


rule plot_predictive_density:
    input:
        kl=path(layout.PREDICTIVE, seed=SEEDS[0]),
        density=path(layout.PREDICTIVE_DENSITY, seed=SEEDS[0]),
    output:
        png=report(
            path(layout.FIGURE, name="predictive_density_M{M}", ext="png"),
            caption="../report/predictive_density.rst",
            category="Predictive density",
        ),
        pdf=path(layout.FIGURE, name="predictive_density_M{M}", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/predictive_density_M{{M}}.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **FAMILY_PARAMS,
        seed=SEEDS[0],
    script:
        "../scripts/plot_predictive_density.py"


rule plot_martingale:
    input:
        martingale=rules.aggregate_premise.output.martingale,
        exchangeability=rules.aggregate_premise.output.exchangeability,
        coverage=rules.aggregate_premise.output.coverage,
    output:
        png=report(
            path(layout.FIGURE, name="martingale", ext="png"),
            caption="../report/martingale.rst",
            category="Predictive resampling",
            subcategory="Premise",
        ),
        pdf=path(layout.FIGURE, name="martingale", ext="pdf"),
    log:
        f"{RESULTS}/logs/plots/martingale.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/plot_martingale.py"
