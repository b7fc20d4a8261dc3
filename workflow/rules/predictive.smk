rule predictive:
    """The PFN's predictive density at fixed prompts, every checkpoint, against the exact ones."""
    input:
        checkpoints=lambda wc: [
            layout.checkpoint(run_dir(wc.M, wc.seed), step)
            for step in CHECKPOINT_STEPS
        ],
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        kl=path(layout.PREDICTIVE),
        density=path(layout.PREDICTIVE_DENSITY),
    log:
        f"{RESULTS}/logs/predictive/M{{M}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predictive/M{{M}}_seed{{seed}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=config["predictive"],
        noise_var=config["noise_var"],
        run=run_identity,
    script:
        "../scripts/predictive.py"


rule aggregate_predictive:
    """KL divergences from the exact predictives, every run, prompt and checkpoint."""
    input:
        per_run(layout.PREDICTIVE),
    output:
        path(layout.TABLE, name="predictive"),
    log:
        f"{RESULTS}/logs/aggregate_predictive.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_predictive.py"
