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
        dim=config["dim"],
        n_dims=config["resample"]["plot_dims"],
        seed=SEEDS[0],
    script:
        "../scripts/plot_implied_prior.py"


rule plot_posterior:
    input:
        stats=rules.aggregate_resample.output[0],
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
    script:
        "../scripts/plot_posterior.py"
