rule plot_mask:
    output:
        png=report(
            f"{RESULTS}/figures/mask.png",
            caption="../report/mask.rst",
            category="Model",
        ),
        pdf=f"{RESULTS}/figures/mask.pdf",
    log:
        f"{RESULTS}/logs/plots/mask.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/plot_mask.py"


rule plot_task_diversity:
    input:
        summary=rules.aggregate_eval.output.summary,
        thresholds=rules.aggregate_eval.output.thresholds,
    output:
        png=report(
            f"{RESULTS}/figures/task_diversity.png",
            caption="../report/task_diversity.rst",
            category="Task diversity",
        ),
        pdf=f"{RESULTS}/figures/task_diversity.pdf",
    log:
        f"{RESULTS}/logs/plots/task_diversity.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **PRIOR_PARAMS,
    script:
        "../scripts/plot_task_diversity.py"


rule plot_losses:
    input:
        summary=rules.aggregate_eval.output.summary,
        train_log=rules.aggregate_train_log.output[0],
    output:
        png=report(
            f"{RESULTS}/figures/losses.png",
            caption="../report/losses.rst",
            category="Training",
        ),
        pdf=f"{RESULTS}/figures/losses.pdf",
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
        reference=f"{RESULTS}/resample/M{{M}}_reference.parquet",
        pool=pool_file,
    output:
        png=report(
            f"{RESULTS}/figures/implied_prior_M{{M}}.png",
            caption="../report/implied_prior.rst",
            category="Predictive resampling",
            subcategory="Implied prior",
        ),
        pdf=f"{RESULTS}/figures/implied_prior_M{{M}}.pdf",
    log:
        f"{RESULTS}/logs/plots/implied_prior_M{{M}}.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **PRIOR_PARAMS,
        dim=config["dim"],
        n_dims=config["resample"]["plot_dims"],
        seed=SEEDS[0],
    script:
        "../scripts/plot_implied_prior.py"


rule plot_posterior:
    input:
        stats=rules.aggregate_resample.output.stats,
    output:
        png=report(
            f"{RESULTS}/figures/posterior.png",
            caption="../report/posterior.rst",
            category="Predictive resampling",
            subcategory="Posterior",
        ),
        pdf=f"{RESULTS}/figures/posterior.pdf",
    log:
        f"{RESULTS}/logs/plots/posterior.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **PRIOR_PARAMS,
    script:
        "../scripts/plot_posterior.py"


rule plot_in_context:
    input:
        rules.aggregate_in_context.output[0],
    output:
        png=report(
            f"{RESULTS}/figures/in_context.png",
            caption="../report/in_context.rst",
            category="Task diversity",
        ),
        pdf=f"{RESULTS}/figures/in_context.pdf",
    log:
        f"{RESULTS}/logs/plots/in_context.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **PRIOR_PARAMS,
        context_length=config["context_length"],
    script:
        "../scripts/plot_in_context.py"


rule plot_posterior_marginals:
    input:
        samples=lambda wc: resample_files(wc.M, SEEDS[0]),
        reference=f"{RESULTS}/resample/M{{M}}_reference.parquet",
        eval_pool=pool_eval_file,
        eval_true=f"{RESULTS}/tasks/eval_true.parquet",
    output:
        png=report(
            f"{RESULTS}/figures/posterior_marginals_M{{M}}.png",
            caption="../report/posterior_marginals.rst",
            category="Predictive resampling",
            subcategory="Posterior marginals",
        ),
        pdf=f"{RESULTS}/figures/posterior_marginals_M{{M}}.pdf",
    log:
        f"{RESULTS}/logs/plots/posterior_marginals_M{{M}}.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **PRIOR_PARAMS,
        n_dims=config["resample"]["plot_dims"],
        seed=SEEDS[0],
    script:
        "../scripts/plot_posterior_marginals.py"


rule plot_predictive_density:
    input:
        kl=f"{RESULTS}/predictive/M{{M}}_seed{SEEDS[0]}.parquet",
        density=f"{RESULTS}/predictive/M{{M}}_seed{SEEDS[0]}_density.parquet",
    output:
        png=report(
            f"{RESULTS}/figures/predictive_density_M{{M}}.png",
            caption="../report/predictive_density.rst",
            category="Predictive density",
        ),
        pdf=f"{RESULTS}/figures/predictive_density_M{{M}}.pdf",
    log:
        f"{RESULTS}/logs/plots/predictive_density_M{{M}}.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **PRIOR_PARAMS,
        seed=SEEDS[0],
    script:
        "../scripts/plot_predictive_density.py"
