rule evaluate:
    """The metrics (docs/design.md §6) of one checkpoint on T_M and on T_true: per position and per sequence."""
    input:
        checkpoint=layout.checkpoint(run_dir()),
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        positions=path(layout.EVAL),
        sequences=path(layout.EVAL_SEQUENCES),
    log:
        f"{RESULTS}/logs/eval/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    conda:
        "../../envs/lrpfn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        noise_var=config["noise_var"],
        run=run_identity,
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_short with:
    input:
        checkpoint=layout.checkpoint(short_run_dir()),
        pool=pool_file,
        eval_pool=pool_eval_file,
        eval_true=path(layout.EVAL_SET, tasks="true"),
    output:
        positions=path(layout.SHORT_EVAL),
        sequences=path(layout.SHORT_EVAL_SEQUENCES),
    log:
        f"{RESULTS}/logs/eval_short/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_short/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    params:
        noise_var=config["noise_var"],
        run=short_run_identity,


use rule evaluate as evaluate_long with:
    input:
        checkpoint=layout.checkpoint(run_dir()),
        pool=pool_file,
        eval_pool=lambda wc: pool_eval_file(wc, layout.EVAL_LONG),
        eval_true=path(layout.EVAL_LONG, tasks="true"),
    output:
        positions=path(layout.IN_CONTEXT),
    log:
        f"{RESULTS}/logs/eval_long/M{{M}}_seed{{seed}}_step{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_long/M{{M}}_seed{{seed}}_step{{step}}.tsv"
    params:
        noise_var=config["noise_var"],
        run=run_identity,
        in_context=True,


rule aggregate_eval:
    """Every evaluation table stacked, position means, closeness and budget effect per pool size, M*."""
    input:
        positions=per_run(layout.EVAL, CHECKPOINT_STEPS),
        sequences=per_run(layout.EVAL_SEQUENCES, CHECKPOINT_STEPS),
        short=short_eval_files(),
    output:
        metrics=path(layout.TABLE, name="metrics"),
        summary=path(layout.TABLE, name="summary"),
        summary_seeds=path(layout.TABLE, name="summary_seeds"),
        sequences=path(layout.TABLE, name="sequences"),
        closeness=path(layout.TABLE, name="closeness"),
        budget_effect=path(layout.TABLE, name="budget_effect"),
        thresholds=path(layout.TABLE, name="thresholds"),
    log:
        f"{RESULTS}/logs/aggregate_eval.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_eval.py"


rule aggregate_train_log:
    """The training logs of every run in one table."""
    input:
        train_logs(),
    output:
        path(layout.TABLE, name="train_log"),
    log:
        f"{RESULTS}/logs/aggregate_train_log.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        runs=[{"pool_size": M, "seed": seed} for M, seed in runs()],  # one per input, in order
    script:
        "../scripts/aggregate_train_log.py"


rule aggregate_in_context:
    """The in-context curves of every run's final checkpoint, past the trained length, in one table."""
    input:
        per_run(layout.IN_CONTEXT, CHECKPOINT_STEPS[-1:]),
    output:
        table=path(layout.TABLE, name="in_context"),
        seeds=path(layout.TABLE, name="in_context_seeds"),
    log:
        f"{RESULTS}/logs/aggregate_in_context.log",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    script:
        "../scripts/aggregate_in_context.py"
