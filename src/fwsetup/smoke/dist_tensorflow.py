"""fwsetup multi-node smoke test for TensorFlow: one worker of a MultiWorkerMirroredStrategy job over the network.

Under Slurm (--launcher slurm) each task builds its cluster from Slurm's environment: the workers are the
nodes of the job step (SLURM_STEP_NODELIST, expanded by `scontrol show hostnames`, Slurm's own task order),
each at its NodeAddr (`scontrol show node`) and --master-port, and this task is worker SLURM_PROCID. That
cluster goes to TensorFlow as TF_CONFIG (read by its TFConfigClusterResolver), the form every TensorFlow
multi-worker job understands. Not tf.distribute.cluster_resolver.SlurmClusterResolver: on a node without
nvidia-smi it fails (it counts GPUs with it), with gpus_per_node=0 it raises ValueError (a zero range
step), and it orders the nodes by Python string order ("n10" before "n9") while Slurm numbers tasks in
its own hostlist order, which gives a task another node's address.

Worker 0 hosts TensorFlow's coordination service (the rendezvous): every other worker first checks that it
answers within --timeout (naming its address and port), and registration, heartbeats and each collective
are bounded by --timeout too. The variables are created in the strategy's scope with different values on
every worker on purpose: MultiWorkerMirroredStrategy broadcasts worker 0's. Each step every worker computes
the gradient of its own shard, and a replica-context all-reduce (CollectiveOps, RING over gRPC) averages it
(timed); all workers apply the same update. The report carries the SHA-256 of the final weights (the
launcher compares them across ranks) and the global loss before and after.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _dist as d

SHAPES = [(16, 32), (32,), (32, 1), (1,)]


def one_task_per_node(tasks_per_node: str) -> bool:
    """Slurm's SLURM_STEP_TASKS_PER_NODE ("1(x3)", "1,1", "2,1") says one task on every node."""
    for part in tasks_per_node.split(","):
        count = part.split("(", 1)[0].strip()
        if count != "1":
            return False
    return bool(tasks_per_node.strip())


def slurm_workers(
    environ: dict[str, str] | os._Environ, hostnames: list[str], node_addrs: dict[str, str], port: int
) -> tuple[list[str], int]:
    """The workers ("ADDR:PORT", in Slurm's task order) and this task's index, from Slurm's environment,
    the step's nodes in Slurm's order (`scontrol show hostnames`) and each node's address (NodeAddr; a node
    missing there is reached by its name)."""
    try:
        index = int(environ["SLURM_PROCID"])
        tasks = int(environ.get("SLURM_STEP_NUM_TASKS") or environ["SLURM_NTASKS"])
    except (KeyError, ValueError):
        raise d.Fail(
            "--launcher slurm, but this task does not run in a Slurm job step (no SLURM_PROCID / SLURM_NTASKS)"
        ) from None
    per_node = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE") or ""
    if not one_task_per_node(per_node) or tasks != len(hostnames):
        msg = (
            f"the TensorFlow multi-node smoke test runs one task per node; this step has {tasks} tasks on "
            f"{len(hostnames)} nodes (SLURM_STEP_TASKS_PER_NODE={per_node or 'unset'})"
        )
        raise d.Fail(msg)
    if not 0 <= index < tasks:
        raise d.Fail(f"SLURM_PROCID {index} is not a task of this step (0 to {tasks - 1})")
    return [f"{node_addrs.get(h) or h}:{port}" for h in hostnames], index


def tf_config(workers: list[str], index: int) -> dict:
    """TF_CONFIG for worker `index` of `workers` (TensorFlow's multi-worker contract)."""
    return {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}


def parse_node_addrs(text: str) -> dict[str, str]:
    """NodeName -> NodeAddr from `scontrol show node -o` (one node per line)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("NodeName"):
            out[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return out


def _scontrol(*args: str) -> str:
    import subprocess

    try:
        res = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise d.Fail(f"scontrol {' '.join(args)}: {exc}") from None
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        raise d.Fail(f"scontrol {' '.join(args)}: {why}")
    return res.stdout


def slurm_cluster(port: int) -> tuple[list[str], int]:
    """This task's workers and index, asked of Slurm (see slurm_workers)."""
    nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        raise d.Fail(
            "--launcher slurm, but this task does not run in a Slurm job step (no SLURM_STEP_NODELIST)"
        )
    hostnames = _scontrol("show", "hostnames", nodelist).split()
    return slurm_workers(os.environ, hostnames, parse_node_addrs(_scontrol("show", "node", "-o")), port)


def _coordination(tf_context, workers: list[str], timeout: float) -> None:
    """TensorFlow's coordination service (on worker 0) as MultiWorkerMirroredStrategy configures it, with
    our time-outs: registration and heartbeats bounded by --timeout instead of waiting for ever."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    ms = int(timeout * 1000)
    tf_context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=len(workers))],
        cluster_register_timeout_in_ms=ms,
        heartbeat_timeout_in_ms=ms,
        shutdown_barrier_timeout_in_ms=ms,
    )
    # Without a registration barrier the time-out is not applied: worker 0 waits for ever (in C++, deaf to
    # SIGTERM) for a worker that never comes. No argument sets it: the config the call above stored.
    config = getattr(tf_context.context(), "_coordination_service_config", None)
    if config is not None and hasattr(config, "cluster_register_with_barrier"):
        config.cluster_register_with_barrier = True


def missing_workers(error: str, workers: list[str]) -> list[str]:
    """The workers TensorFlow's coordination service names as not registered in time ("Some timed out task
    names: /job:worker/replica:0/task:1 ..."), as their addresses."""
    import re

    _, _, tail = error.partition("timed out task names")
    ids = sorted({int(i) for i in re.findall(r"/job:worker/replica:\d+/task:(\d+)", tail)})
    return [f"worker {i} ({workers[i]})" for i in ids if i < len(workers)]


def train(opts: d.Options, result: dict) -> None:
    import json
    import time

    if opts.device == "cuda":
        raise d.Fail("the multi-node TensorFlow smoke test runs on the CPU (RING collectives over gRPC) only")
    if opts.launcher != "slurm":
        raise d.Fail("the multi-node TensorFlow smoke test runs under Slurm (--launcher slurm) only")
    workers, index = slurm_cluster(opts.master_port)
    host, _, port = workers[0].rpartition(":")
    opts.rank, opts.world = index, len(workers)
    opts.master_addr, opts.master_port = host, int(port)
    opts.addr = workers[index].rpartition(":")[0]
    result.update(rendezvous=workers[0], addr=opts.addr, rank=index, world=len(workers), workers=workers)
    d.locate(opts, result)  # this task's address is its node's own
    os.environ["TF_CONFIG"] = json.dumps(tf_config(workers, index))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # a CPU job: never grab a GPU of a shared node
    t = time.perf_counter()
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.eager import context as tf_context

    result["import_seconds"] = round(time.perf_counter() - t, 3)
    result["version"] = tf.__version__
    if index != 0:  # worker 0's server comes up once it makes the strategy: can this node reach it?
        result["addr_seen"] = d.wait_reachable(opts.master_addr, opts.master_port, opts.timeout, opts.addr)
    _coordination(tf_context, workers, opts.timeout)
    t = time.perf_counter()
    comm = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING,
        timeout_seconds=opts.timeout,
    )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=comm)
    except Exception as exc:  # noqa: BLE001 - any failure to meet: say where
        late = missing_workers(str(exc), workers)
        why = f"{', '.join(late)} did not register" if late else (str(exc).strip().splitlines() or ["?"])[0]
        msg = f"the workers did not meet at {workers[0]} (worker 0) within {opts.timeout:g} s: {why}"
        raise d.Fail(msg) from None
    if strategy.num_replicas_in_sync != len(workers):
        msg = f"expected {len(workers)} replicas across the workers, the strategy has {strategy.num_replicas_in_sync}"
        raise d.Fail(msg)
    rng = np.random.default_rng(1000 + opts.seed + index)  # each worker its own shard
    w_true = np.random.default_rng(7).standard_normal((16, 1)).astype(np.float32)
    x_np = rng.standard_normal((256, 16)).astype(np.float32)
    y_np = (np.tanh(x_np @ w_true) + 0.01 * rng.standard_normal((256, 1))).astype(np.float32)
    x, y = tf.constant(x_np), tf.constant(y_np)
    init = np.random.default_rng(opts.seed + 100 * index)  # different on purpose: worker 0's are broadcast
    with strategy.scope():
        params = [tf.Variable((0.3 * init.standard_normal(s)).astype(np.float32)) for s in SHAPES]
    result["rendezvous_seconds"] = round(time.perf_counter() - t, 3)

    def loss_of(xb, yb):
        w1, b1, w2, b2 = params
        return tf.reduce_mean(tf.square(tf.tanh(xb @ w1 + b1) @ w2 + b2 - yb))

    @tf.function
    def local_grad():
        with tf.GradientTape() as tape:
            loss = loss_of(x, y)
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, params)], 0)

    def mean_over_workers(v):
        # tf.identity: the value placed on this replica's device (a graph input has none, and the
        # all-reduce refuses a value with no device: "destinations can not be empty").
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v))

    @tf.function
    def allreduce(v):
        return strategy.run(mean_over_workers, args=(v,))

    def allreduce_mean(v) -> np.ndarray:
        out = allreduce(tf.constant(v))
        return np.asarray(strategy.experimental_local_results(out)[0])

    def global_loss() -> float:
        return float(allreduce_mean(np.asarray([float(loss_of(x, y))], dtype=np.float32))[0])

    sizes = [int(np.prod(s)) for s in SHAPES]
    flat = np.concatenate([p.numpy().ravel() for p in params])
    before = global_loss()
    m, v2 = np.zeros_like(flat), np.zeros_like(flat)  # Adam, by hand (the same update as the others)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    times: list[float] = []
    for step in range(opts.steps):
        if step == opts.crash_at_step:
            os._exit(17)  # tests: a rank that dies mid-step
        g_local = local_grad().numpy()
        d.hang_here(opts, step)
        t0 = time.perf_counter()
        g = allreduce_mean(g_local)
        times.append(time.perf_counter() - t0)
        m = b1 * m + (1 - b1) * g
        v2 = b2 * v2 + (1 - b2) * g * g
        mh = m / (1 - b1 ** (step + 1))
        vh = v2 / (1 - b2 ** (step + 1))
        flat = (flat - lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        off = 0
        for p, s, n in zip(params, SHAPES, sizes, strict=True):
            p.assign(flat[off : off + n].reshape(s))
            off += n
    after = global_loss()
    import hashlib

    final = np.concatenate([p.numpy().ravel() for p in params])
    result.update(
        device="cpu",
        backend="collective ops (RING, gRPC)",
        steps=opts.steps,
        loss_before=before,
        loss_after=after,
        weights_sha256=hashlib.sha256(final.tobytes()).hexdigest(),
        allreduce_seconds=round(d.median(times) or 0.0, 6),
        allreduce_bytes=int(final.nbytes),
    )


if __name__ == "__main__":
    d.main("tensorflow", train)
