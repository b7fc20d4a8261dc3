rule premise:
    """Martingale read-out at the last premise.checkpoints resampled checkpoints and
    exchangeability at the final one: the PFN and the exact predictor of its training
    distribution, by the same code.
    """
    input:
        checkpoints=lambda wc: [
            layout.checkpoint(run_dir(wc.M, wc.seed), step) for step in PREMISE_STEPS
        ],
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        martingale=path(layout.MARTINGALE),
        exchangeability=path(layout.EXCHANGEABILITY),
    log:
        f"{RESULTS}/logs/premise/M{{M}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/premise/M{{M}}_seed{{seed}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        settings=premise_settings(
            "prompts",
            "prompt_lengths",
            "queries",
            "continuations",
            "permutations",
            "seed",
        ),
        lengths=resample_settings("path_length"),
        noise_var=config["noise_var"],
        run=run_identity,
    script:
        "../scripts/premise.py"


rule coverage:
    """Coverage of new tasks' true w by the final checkpoint's resampled posteriors, beside
    the exact reference resampler's (same inputs) and the exact posterior's intervals. The
    longest of the read-outs, so it starts before the others that are ready.
    """
    input:
        checkpoint=lambda wc: layout.checkpoint(
            run_dir(wc.M, wc.seed), CHECKPOINT_STEPS[-1]
        ),
        pool=pool_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        path(layout.COVERAGE),
    log:
        f"{RESULTS}/logs/premise/M{{M}}_seed{{seed}}_coverage.log",
    benchmark:
        f"{RESULTS}/benchmarks/premise/M{{M}}_seed{{seed}}_coverage.tsv"
    priority: 1
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        settings=premise_settings(
            "coverage_tasks",
            "coverage_paths",
            "coverage_prefix_lengths",
            "levels",
            "seed",
        ),
        path_length=config["resample"]["path_length"],
        noise_var=config["noise_var"],
        run=run_identity,
    script:
        "../scripts/coverage.py"


rule aggregate_premise:
    """The premise read-outs of every run, and one summary row per run."""
    input:
        martingale=per_run(layout.MARTINGALE),
        exchangeability=per_run(layout.EXCHANGEABILITY),
        coverage=coverage_files(),
    output:
        martingale=path(layout.TABLE, name="martingale"),
        exchangeability=path(layout.TABLE, name="exchangeability"),
        coverage=path(layout.TABLE, name="coverage"),
        summary=path(layout.TABLE, name="premise_summary"),
    log:
        f"{RESULTS}/logs/aggregate_premise.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_premise.py"
