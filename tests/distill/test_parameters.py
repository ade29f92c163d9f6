from timetag.distill.parameters import bound, expected_length, rounds_needed
from timetag.estimators.finitekey import finite_key_length


def test_bound_is_the_project_formula_with_the_measured_leak():
    # with the paper's design (p_key 1/4, p_test 1/2) and leak = f n_k h(Q) it is finitekey's own number
    from timetag.distill.reconcile import h2
    N, S, Q = 1e6, 2.578, 0.078
    leak = 1.15 * 0.25 * N * h2(Q)
    assert abs(bound(int(0.25 * N), int(0.5 * N), S, Q, leak, 1e-5) - finite_key_length(N, S, Q)) < 1e-6 * N
    assert expected_length(250_000, 500_000, S, Q, 1.15, 1e-5) < bound(250_000, 500_000, S, Q, 0, 1e-5)


def test_rounds_needed_matches_the_paper_scale():
    n = rounds_needed(2.578, 0.078, 1.15, 1e-5, 0.25, 0.5)
    assert 1e5 < n < 3e5
