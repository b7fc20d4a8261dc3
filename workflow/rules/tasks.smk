rule pool:
    """Pool M: the first M rows of the seeded master task draw. As urgent as the training
    that waits for it (a rule's priority does not pass to the jobs it depends on).
    """
    output:
        path(layout.POOL),
    log:
        f"{RESULTS}/logs/tasks/pool_M{{M}}.log",
    wildcard_constraints:
        M=r"\d+",
    priority: FIRST
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **DRAW_PARAMS,
        dim=config["dim"],
        seed=config["task_seed"],
    script:
        "../scripts/pool.py"


rule eval_set:
    """Fixed evaluation sequences from T_M (with its pool) or T_true."""
    input:
        pool=lambda wc: (
            []
            if wc.tasks == "true"
            else path(layout.POOL, M=wc.tasks.removeprefix("M"))
        ),
    output:
        path(layout.EVAL_SET),
    log:
        f"{RESULTS}/logs/tasks/eval_{{tasks}}.log",
    wildcard_constraints:
        tasks=r"true|M\d+",
    localrule: True
    conda:
        "../../envs/lrpfn.yaml"
    params:
        **FAMILY_PARAMS,
        dim=config["dim"],
        context_length=config["context_length"],
        noise_var=config["noise_var"],
        n_sequences=config["eval"]["n_sequences"],
        seed=config["eval"]["seed"],
    script:
        "../scripts/eval_set.py"


use rule eval_set as eval_set_long with:
    output:
        path(layout.EVAL_LONG),
    log:
        f"{RESULTS}/logs/tasks/eval_long_{{tasks}}.log",
    localrule: True
    params:
        **FAMILY_PARAMS,
        dim=config["dim"],
        context_length=config["eval"]["extrapolate_to"],
        noise_var=config["noise_var"],
        n_sequences=config["eval"]["n_sequences"],
        seed=config["eval"]["seed"],
