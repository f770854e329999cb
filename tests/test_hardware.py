import multiprocessing
import os

from fmtbench import env
from fmtbench.workflow import hardware


def test_usable_cores_follow_affinity_not_the_machine():
    """os.cpu_count() saw every core of the node under taskset, a cgroup or SLURM; CPU rows used them all."""
    def child(queue):
        os.sched_setaffinity(0, {0})
        queue.put((os.cpu_count(), hardware.usable_cores(), env.capture("cpu")["cpu_affinity"]))
    queue = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=child, args=(queue,))
    process.start()
    machine, usable, recorded = queue.get(timeout=30)
    process.join()
    assert usable == recorded == [0]
    assert machine == os.cpu_count()


def test_core_plan_keeps_cpu_rows_exports_and_cuda_jobs_apart():
    plan = hardware.core_plan(True, None, list(range(16)))
    assert not set(plan["cpu"]) & set(plan["cuda"]) and not set(plan["export"]) & set(plan["cuda"])
    assert not set(plan["cpu"]) & set(plan["export"])
    assert sorted(plan["cpu"] + plan["cuda"] + plan["export"]) == list(range(16))
    assert hardware.core_plan(False, None, [0, 1]) == {"cpu": [0, 1], "cuda": [0, 1], "export": [0, 1]}
    assert hardware.core_plan(True, 4, list(range(16)))["cpu"] == [10, 11, 12, 13]


def test_a_cpu_job_beside_the_cuda_jobs_claims_its_own_cores_and_leaves_room_for_a_cuda_job_or_export():
    """With CUDA rows on 16 cores and the host in turns, a CPU job claims its 7 cores: a CUDA job (7) and an export (2),
    or a CUDA export (the CUDA jobs' and the exports' 9 cores, holding the GPU), run beside it. Without turns, or
    without CUDA rows, it claims every core: nothing runs beside it."""
    plan = hardware.core_plan(True, None, list(range(16)))
    claim = hardware.cpu_job_claim(plan, 16, turns=True)
    assert claim == len(plan["cpu"]) == 7
    assert claim + len(plan["cuda"]) + len(plan["export"]) <= 16
    assert claim + len(set(plan["cuda"]) | set(plan["export"])) <= 16
    assert hardware.cpu_job_claim(plan, 16, turns=False) == 16
    alone = hardware.core_plan(False, None, list(range(16)))
    assert hardware.cpu_job_claim(alone, 16, turns=True) == 16
    assert hardware.cpu_job_claim(plan, None, turns=False) == 7, "a cluster job: its own cores"
