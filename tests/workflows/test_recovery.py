"""A work chain whose daemon worker died, continued from its checkpoint by another worker: the process function the
dead worker was running is marked killed, and a work chain that was storing its outputs finishes ok with the
outputs the first worker linked (aiida_mlpot.workflows.recovery)."""

from __future__ import annotations

from importlib.metadata import entry_points

import plumpy
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import BaseRestartWorkChain, WorkChain, calcfunction, run_get_node, while_
from aiida.engine.persistence import AiiDAPersister
from aiida.engine.processes.process import Process
from aiida.manage import get_manager

from aiida_mlpot.workflows.recovery import RecoveryMixin


@calcfunction
def halve_and_double(x: orm.Int) -> dict:
    """Return ``x // 2`` and ``2 x``."""
    return {'half': orm.Int(x.value // 2), 'double': orm.Int(2 * x.value)}


class Child(WorkChain):
    """One calcfunction; two required outputs."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('x', valid_type=orm.Int)
        spec.output('half', valid_type=orm.Int)
        spec.output('double', valid_type=orm.Int)
        spec.outline(cls.compute)

    def compute(self):
        self.out_many(halve_and_double(self.inputs.x))


class Restart(BaseRestartWorkChain):
    """A ``BaseRestartWorkChain`` as aiida-core ships it (its ``results`` skips outputs linked already)."""

    _process_class = Child

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Child)
        spec.expose_outputs(Child)
        spec.outline(
            cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results
        )

    def setup(self):
        super().setup()
        self.ctx.inputs = self.exposed_inputs(Child)


class RecoveringRestart(RecoveryMixin, Restart):
    """The same work chain with the package's recovery."""


class WorkerDied(BaseException):
    """SIGKILL of the worker: nothing after this point runs (not even a ``finally`` clause's database write)."""


DIE_AT = {'x': None}


@calcfunction
def add_one(x: orm.Int) -> orm.Int:
    """Return ``x + 1``; the worker dies in here, once, when ``x`` is ``DIE_AT['x']``."""
    if x.value == DIE_AT['x']:
        DIE_AT['x'] = None
        raise WorkerDied()
    return orm.Int(x.value + 1)


class Counting(RecoveryMixin, WorkChain):
    """Two steps, each calling ``add_one``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('x', valid_type=orm.Int)
        spec.output('result', valid_type=orm.Int)
        spec.outline(cls.first, cls.second)

    def first(self):
        self.ctx.value = add_one(self.inputs.x)

    def second(self):
        self.out('result', add_one(self.ctx.value))


def die_after_first_output(monkeypatch, process_class) -> dict:
    """Make the finishing ``process_class`` store its first output, then die as a killed worker does."""
    original_update = Process.update_outputs
    original_state = orm.ProcessNode.set_process_state
    died = {}

    def update_outputs(self):
        if type(self) is process_class and self._state.LABEL == plumpy.ProcessState.FINISHED:
            label, output = sorted(self._flat_outputs().items())[0]
            output.base.links.add_incoming(self.node, LinkType.RETURN, label)
            output.store()
            died.update(pk=self.node.pk, label=label, uuid=output.uuid)
            raise WorkerDied()
        return original_update(self)

    def set_process_state(self, state):
        if self.pk != died.get('pk'):
            original_state(self, state)

    monkeypatch.setattr(Process, 'update_outputs', update_outputs)
    monkeypatch.setattr(orm.ProcessNode, 'set_process_state', set_process_state)
    return died


def continue_from_checkpoint(pk: int):
    """What a new daemon worker does with the process's task: load its checkpoint and run it to the end."""
    runner = get_manager().create_runner(broker_submit=False)
    try:
        process = AiiDAPersister().load_checkpoint(pk).unbundle(plumpy.LoadSaveContext(runner=runner))
        runner.loop.run_until_complete(process.step_until_terminated())
    finally:
        runner.close()
    return orm.load_node(pk)


@pytest.mark.parametrize('process_class', [Restart, RecoveringRestart])
def test_continued_work_chain_keeps_the_outputs_stored_before_the_worker_died(
    aiida_profile, monkeypatch, process_class
):
    """The first worker links ``double`` and dies; the second runs ``results`` again. aiida-core's own restart
    chain then finishes with 11 (missing output) though both outputs are on the node; with the recovery it
    finishes ok, its outputs the ones the first worker linked, each linked once."""
    died = die_after_first_output(monkeypatch, process_class)
    with pytest.raises(WorkerDied):
        run_get_node(process_class, x=orm.Int(7))
    monkeypatch.undo()

    node = orm.load_node(died['pk'])
    assert node.process_state == plumpy.ProcessState.RUNNING  # as a killed worker leaves it
    assert node.base.links.get_outgoing(link_type=LinkType.RETURN).all_link_labels() == ['double']
    assert node.checkpoint is not None

    node = continue_from_checkpoint(node.pk)
    links = node.base.links.get_outgoing(link_type=LinkType.RETURN).all()
    assert sorted(link.link_label for link in links) == ['double', 'half']  # each label once
    if process_class is Restart:  # the defect the recovery is for, as aiida-core 2.9.4 has it
        assert node.exit_status == process_class.exit_codes.ERROR_MISSING_OUTPUT.status
        return
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert node.outputs.double.uuid == died['uuid']  # the output the first worker linked
    assert node.outputs.double.value == 14 and node.outputs.half.value == 3


def test_process_function_left_running_by_a_dead_worker_is_marked_killed(aiida_profile):
    """The worker dies inside the second step's calcfunction; the work chain continued from its checkpoint marks
    that calcfunction killed (why is in its process status), runs the step again and finishes ok; nothing is left
    running."""
    DIE_AT['x'] = 2  # the second step's call
    with pytest.raises(WorkerDied):
        run_get_node(Counting, x=orm.Int(1))
    nodes = (
        orm.QueryBuilder()
        .append(orm.WorkChainNode, filters={'attributes.process_label': 'Counting'})
        .all(flat=True)
    )
    node = max(nodes, key=lambda n: n.pk)
    calls = sorted(node.called, key=lambda n: n.pk)
    assert [c.process_state for c in calls] == [plumpy.ProcessState.FINISHED, plumpy.ProcessState.RUNNING]
    assert node.process_state == plumpy.ProcessState.RUNNING

    node = continue_from_checkpoint(node.pk)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert node.outputs.result.value == 3
    first, dead, rerun = sorted(node.called, key=lambda n: n.pk)
    assert dead.process_state == plumpy.ProcessState.KILLED and dead.is_sealed
    assert 'killed with the daemon worker' in dead.process_status and f'<{node.pk}>' in dead.process_status
    assert (
        first.is_finished_ok
        and rerun.is_finished_ok
        and rerun.outputs.result.uuid == node.outputs.result.uuid
    )


def test_every_work_chain_of_the_package_has_the_recovery():
    """Each work chain entry point of the package has the recovery."""
    workflows = [ep for ep in entry_points(group='aiida.workflows') if ep.name.startswith('mlpot.')]
    assert len(workflows) >= 7
    missing = [ep.name for ep in workflows if not issubclass(ep.load(), RecoveryMixin)]
    assert not missing, f'work chains without RecoveryMixin: {missing}'
