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
        summary=rules.aggregate.output.summary,
        thresholds=rules.aggregate.output.thresholds,
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
        summary=rules.aggregate.output.summary,
        train_log=rules.aggregate.output.train_log,
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
