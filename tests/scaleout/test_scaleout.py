"""Scale-out end to end: labelling (LAMMPS teacher, CP2K xTB) and fitting (gap_fit) as SLURM jobs submitted by
the daemon of a PostgreSQL + RabbitMQ profile; label reuse through AiiDA caching of the oracle calculations."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.scaleout]


def test_services_are_private_and_on_loopback(scaleout):
    """The profile is on core.psql_dos + core.rabbitmq; RabbitMQ has consumer_timeout off; SLURM node idle."""
    result = scaleout.verdi('profile', 'show', scaleout.profile)
    assert 'core.psql_dos' in result.stdout and 'core.rabbitmq' in result.stdout
    assert "'127.0.0.1'" in result.stdout or '127.0.0.1' in result.stdout
    services = scaleout.services
    assert services.postgres.info()['run_as'] == (
        'postgres' if services.postgres.user else services.postgres.run_as
    )
    value = services.rabbitmq.ctl('eval', 'application:get_env(rabbit, consumer_timeout).').strip()
    assert value == '{ok,undefined}'
    assert services.slurm.node_state() in ('idle', 'mix', 'alloc')
    assert len(scaleout.daemon_pids()) == 2
    assert all(scaleout.services.alive().values())


def test_labelling_and_fitting_run_as_slurm_jobs(scaleout):
    """Teacher labels, CP2K xTB labels and a GAP fit, every CalcJob a SLURM job submitted through the daemon."""
    result = scaleout.driver('e2e')
    print(f'scale-out e2e (labelling + fitting through SLURM): {result["wall_s"]:.1f} s')
    for stage in ('teacher', 'xtb', 'fit'):
        assert result[stage] is not None, f'{stage} was not submitted: {result}'
        assert result[stage]['finished_ok'], f'{stage} failed: {result[stage]}'
    assert result['teacher']['n_labelled'] == 10
    assert result['xtb']['n_labelled'] == 2
    assert 0.0 < result['xtb']['max_force'] < 10.0
    assert result['fit']['species'] == ['Cl', 'Na']

    completed = scaleout.services.slurm.completed_jobs()  # SLURM's own job-completion log
    accounts = {'teacher': 'mlpot-label', 'xtb': 'mlpot-label', 'fit': 'mlpot-fit'}
    labels = {'teacher': {'LammpsRerunCalculation'}, 'xtb': {'Cp2kCalculation'}}
    labels['fit'] = {'GapFitCalculation'}
    for stage, account in accounts.items():
        calcjobs = result[stage]['calcjobs']
        assert labels[stage] <= {fact['process_label'] for fact in calcjobs}
        for fact in calcjobs:
            assert fact['scheduler'] == 'core.slurm' and fact['computer'] == 'slurm'
            assert fact['exit_status'] == 0 and fact['cached_from'] is None
            job = completed[int(fact['job_id'])]  # the job id AiiDA recorded is a job SLURM ran
            assert job['JobState'] == 'COMPLETED' and job['ExitCode'] == '0:0'
            assert job['Account'] == account
            assert f'#SBATCH --account={account}' in fact['sbatch']
            assert any(line.startswith('#SBATCH --time=') for line in fact['sbatch'])
    fit_job = next(f for f in result['fit']['calcjobs'] if f['process_label'] == 'GapFitCalculation')
    assert '#SBATCH --mem=2048' in fit_job['sbatch']  # max_memory_kb = 2 GiB
    assert 'mem=2G' in completed[int(fit_job['job_id'])]['Tres']
    # slurmctld's log agrees
    log = (scaleout.services.slurm.folder / 'slurmctld.log').read_text()
    assert f'JobId={fit_job["job_id"]} ' in log


def test_relabelling_reuses_cached_oracle_results(scaleout):
    """Caching on for the oracle calculations: relabelling 2 of 3 configurations with the same code and settings
    reuses their CP2K results (cached nodes in the graph); only the new configuration runs as a SLURM job.

    The two configurations are those the e2e test labelled; when it ran first, the driver's first run is itself
    served from the cache, otherwise it labels them."""
    result = scaleout.driver('caching')
    first, second = result['first'], result['second']
    assert first['finished_ok'] and second['finished_ok'], result
    run_first = [f for f in first['calcjobs'] if f['process_label'] == 'Cp2kCalculation']
    run_second = [f for f in second['calcjobs'] if f['process_label'] == 'Cp2kCalculation']
    assert len(run_first) == 2 and len(run_second) == 3
    cached = [f for f in run_second if f['cached_from'] is not None]
    fresh = [f for f in run_second if f['cached_from'] is None]
    assert len(cached) == 2 and len(fresh) == 1
    for source in result['cache_sources'].values():  # each cached node points at a finished calculation
        assert source['process_label'] == 'Cp2kCalculation' and source['finished_ok']
        assert source['same_structure_hash']
    completed = scaleout.services.slurm.completed_jobs()
    assert int(fresh[0]['job_id']) in completed  # the new configuration ran as a SLURM job
    for key, energy in first['energies'].items():
        assert second['energies'][key] == energy  # the same labels
    saved = len(cached) / len(run_second)
    print(
        f'caching: {len(cached)} of {len(run_second)} oracle calls reused ({100 * saved:.0f} % saved); '
        f'first run {first["wall_s"]:.1f} s ({sum(f["cached_from"] is not None for f in run_first)} of 2 cached), '
        f'second {second["wall_s"]:.1f} s for 3'
    )


def test_labelling_survives_killed_daemon_workers(scaleout):
    """SIGKILL every daemon process (workers and circus) while a CP2K labelling batch runs in SLURM, start the
    daemon again: the work chain finishes, each configuration was labelled by exactly one SLURM job, and no
    process is left running."""
    import os
    import signal

    submitted = scaleout.driver('crash-submit')
    assert not submitted['terminated'], f'the labelling ended before the daemon could be killed: {submitted}'
    calcs_before = submitted['calcjobs']
    assert len(calcs_before) == 3 and all(fact['job_id'] for fact in calcs_before.values())
    pids = scaleout.daemon_pids(circus=True)
    assert len(pids) >= 3  # circus, its two workers (and its stats process)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    scaleout.start_daemon()
    result = scaleout.driver('crash-finish', '--pk', str(submitted['pk']))
    print(f'labelling after SIGKILL of the daemon: waited {result["waited_s"]:.1f} s after the restart')
    assert result['finished_ok'], result
    assert result['n_labelled'] == 3, result
    assert result['labelling_children'].count('Cp2kLabelWorkChain') == 3  # nothing relaunched
    # nothing left running; a calcfunction the killed worker was running is marked killed (workflows/recovery.py)
    assert result['not_terminated'] == [], result
    for pk, label, status in result['killed']:
        print(f'killed with the daemon: {label}<{pk}>: {status}')
        assert 'killed with the daemon worker' in status, result['killed']
    calcjobs = [f for f in result['calcjobs'] if f['process_label'] == 'Cp2kCalculation']
    assert len(calcjobs) == 3  # no configuration labelled twice
    assert {str(f['pk']): f['job_id'] for f in calcjobs} == {
        pk: fact['job_id'] for pk, fact in calcs_before.items()
    }  # the same SLURM jobs: none resubmitted
    completed = scaleout.services.slurm.completed_jobs()
    names = [job['Name'] for job in completed.values()]
    for fact in calcjobs:
        assert names.count(f'aiida-{fact["pk"]}') == 1  # one SLURM job per calculation
        assert completed[int(fact['job_id'])]['JobState'] == 'COMPLETED'


def test_active_learning_loop_survives_killed_daemon_workers(scaleout):
    """The argon loop (test_loop_argon's budgets, every calculation a SLURM job) submitted to the daemon; circus and
    both workers SIGKILLed once while the teacher labels (its LAMMPS job running in SLURM) and once while the ML MD
    runs, the daemon started again each time. Every job of this run passes a gate at its first line (driver.gate):
    the job of the stage under test is held there, running in SLURM and polled by AiiDA as running, through the
    kill and the restart. Compared with the same loop run uninterrupted at the same time (in its own process, with
    a LAMMPS code of its own so that caching cannot serve one run from the other): the same oracle calls per
    iteration and configurations, nothing labelled twice, the same process tree and data nodes, nothing left
    running, one SLURM job per calculation, the same final training set."""
    import time
    from collections import Counter

    start = time.monotonic()
    reference_process = scaleout.driver_start('loop-reference', '--timeout', '900')
    try:
        crash = scaleout.driver('loop-crash', '--timeout', '900')
        scaleout.started_pids += crash['daemon_pids']  # the daemon the driver started again
        kills = crash['kills']
        assert set(kills) == {'labelling', 'mlmd'}, f'the daemon was not killed at every stage: {crash}'
        for found in kills.values():
            assert len(found['daemon_pids']) >= 3 and found['restart'] == 0  # circus, its two workers
            # killed while the job ran: SLURM had it running through the kill and the restart, AiiDA had seen it
            # running, and had finished neither it nor the loop
            assert found['scheduler_state_at_kill'] == 'running', found
            assert found['slurm_state_after_kill'] == found['slurm_state_after_restart'] == 'RUNNING', found
            assert found['calc_state_after_kill'] == 'waiting', found
            assert found['loop_state_after_kill'] == 'waiting', found
        reference = scaleout.driver_result(reference_process, timeout=900)
        crashed = scaleout.driver(
            'loop-finish', '--pk', str(crash['pk']), '--timeout', '900'
        )  # after both: the whole profile
    finally:
        if reference_process.poll() is None:
            reference_process.kill()
            reference_process.wait()
    wall = time.monotonic() - start
    print(
        f'loop crash recovery: {wall:.0f} s for both runs; kills at {kills["labelling"]["caller"]} '
        f'(job {kills["labelling"]["job_id"]}) and {kills["mlmd"]["caller"]} (job {kills["mlmd"]["job_id"]}); '
        f'reference {reference["wall_s"]:.0f} s; jobs let through the gate: {crash["released"]}'
    )
    for name, run in (('crashed', crashed), ('reference', reference)):
        curve = [(row['iteration'], row['oracle_calls'], row['n_train']) for row in run['learning_curve']]
        print(
            f'  {name}: (iteration, cumulative oracle calls, training size) {curve}; final train/test '
            f'{run["n_train"]}/{run["n_test"]}; {run["n_processes"]} processes, {len(run["all_calcjobs"])} CalcJobs, '
            f'data nodes made {sum(run["created"].values())}; labellings '
            + ', '.join(f'{k}: {v["n_configurations"]}' for k, v in sorted(run['labellings'].items()))
            + f'; loop {run["wall_in_graph_s"]} s (ctime to mtime); processes (label, start s, end s, job): '
            + f'{run["process_times"]}'
        )
    assert crashed['finished_ok'], crashed
    assert reference['finished_ok'], reference
    assert crashed['oracle_code']['hash'] != reference['oracle_code']['hash']  # neither served from the other

    # the same oracle work per iteration and the same final sets
    per_iteration = [
        (row['iteration'], row['oracle_calls'], row['n_train']) for row in crashed['learning_curve']
    ]
    assert per_iteration == [
        (row['iteration'], row['oracle_calls'], row['n_train']) for row in reference['learning_curve']
    ]
    assert (crashed['n_train'], crashed['n_test']) == (reference['n_train'], reference['n_test'])
    assert crashed['stopping']['criterion'] == reference['stopping']['criterion'] == 'converged'

    # every labelling: one oracle calculation, run (not cached), over as many configurations as the reference's;
    # no configuration (content hash) sent to the oracle twice
    assert set(crashed['labellings']) == set(reference['labellings'])
    hashes = []
    for link, labelling in crashed['labellings'].items():
        other = reference['labellings'][link]
        assert len(labelling['oracle_calcs']) == len(other['oracle_calcs']) == 1, (link, labelling)
        calc = labelling['oracle_calcs'][0]
        assert calc['cached_from'] is None and other['oracle_calcs'][0]['cached_from'] is None
        assert labelling['n_configurations'] == other['n_configurations'] == len(calc['structure_hashes'])
        assert labelling['n_labelled'] == other['n_labelled']
        assert (
            calc['structure_hashes'] == other['oracle_calcs'][0]['structure_hashes']
            or link != 'label_initial'
        )
        if link == 'label_initial' or link.startswith('iteration_'):  # the loop's own labellings (the random
            hashes += calc['structure_hashes']  # baseline redraws from the pool on purpose, in both runs)
    assert len(hashes) == len(set(hashes)), 'a configuration was labelled twice'
    assert len(hashes) == crashed['learning_curve'][-1]['oracle_calls']
    # the initial set is the same configurations (the sampling and the selection are seeded)
    initial = [crashed['labellings']['label_initial'], reference['labellings']['label_initial']]
    assert (
        initial[0]['oracle_calcs'][0]['structure_hashes'] == initial[1]['oracle_calcs'][0]['structure_hashes']
    )

    # nothing duplicated, relaunched or left behind: the same process tree (call links, classes, end states),
    # the same number of data nodes made of each type, no process of the profile left unterminated, and every
    # process made since the submission belongs to one of the two runs
    assert crashed['tree'] == reference['tree']
    assert crashed['created'] == reference['created']
    assert crashed['not_terminated'] == [] and crashed['profile_not_terminated'] == []
    assert set(crashed['processes_since_submission']) <= set(crashed['process_pks']) | set(
        reference['process_pks']
    )

    # SLURM's own log: one job per calculation of the crashed run, the killed ones under their original job ids
    completed = scaleout.services.slurm.completed_jobs()
    names = Counter(job['Name'] for job in completed.values())
    jobs = {fact['pk']: fact['job_id'] for fact in crashed['calcjobs']}
    for fact in crashed['calcjobs']:
        assert names[f'aiida-{fact["pk"]}'] == 1, fact
        assert completed[int(fact['job_id'])]['JobState'] == 'COMPLETED'
    for found in kills.values():
        assert jobs[found['calc']] == found['job_id']
