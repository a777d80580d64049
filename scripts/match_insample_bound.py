#!/usr/bin/env python3
"""How well can a low-rank model of log cost rank Scout's environments at all?

Fits log cost[w, e] = a_w + b_e + u_w . v_e (alternating ridge least squares) on EVERY workload's
completed runs, the evaluated workload's own row included, and picks for each workload the
environment with the lowest fitted cost among those where it completed. This is not an
evaluation (the answer is in the fit): it bounds what a rank-r model can reach when a few probes
must pin down the workload, and so whether MATCHING.md's targets are in reach of such a model.
Regret is MATCHING.md's: cost(chosen) / cost(best) - 1; a failed choice costs the worst
completed run.

It then bounds methods that transfer choices between workloads (nearest neighbours, "best for
workloads like it"), with applications held out as in the evaluation: the best of the other
applications' optimal environments picked in hindsight, and the optimum of the other-application
workload whose whole row of costs is most alike (again knowing the answer).

    python3 scripts/match_insample_bound.py ../shared/data/envmatch/scout
"""
import csv
import sys

import numpy as np


def load(folder):
    envs = {r["env"]: r for r in csv.DictReader(open(f"{folder}/environments.csv"))}
    runs = list(csv.DictReader(open(f"{folder}/runs.csv")))
    W = sorted({r["workload"] for r in runs})
    app = {r["workload"]: r["app"] for r in runs}
    E = sorted(envs)
    Y = np.full((len(W), len(E)), np.nan)
    for r in runs:
        if r["completed"] == "1":
            c = float(r["runtime_s"]) / 3600 * float(envs[r["env"]]["price_per_hour"])
            Y[W.index(r["workload"]), E.index(r["env"])] = np.log(c)
    return W, E, Y, [app[w] for w in W]


def fit(Y, rank, ridge, iters=200):
    M = ~np.isnan(Y)
    n, m = Y.shape
    rng = np.random.default_rng(0)
    a, b = np.zeros(n), np.zeros(m)
    U, V = rng.normal(0, 0.1, (n, rank)), rng.normal(0, 0.1, (m, rank))
    P = np.eye(rank + 1) * ridge
    P[0, 0] = 1e-6  # the offsets are not shrunk
    for _ in range(iters):
        for i in range(n):
            k = M[i]
            X = np.hstack([np.ones((k.sum(), 1)), V[k]])
            s = np.linalg.solve(X.T @ X + P, X.T @ (Y[i, k] - b[k]))
            a[i], U[i] = s[0], s[1:]
        for j in range(m):
            k = M[:, j]
            X = np.hstack([np.ones((k.sum(), 1)), U[k]])
            s = np.linalg.solve(X.T @ X + P, X.T @ (Y[k, j] - a[k]))
            b[j], V[j] = s[0], s[1:]
    return a[:, None] + b[None, :] + U @ V.T


def regret(Y, w, j):
    worst = np.nanmax(Y[w])
    return np.exp((Y[w, j] if not np.isnan(Y[w, j]) else worst) - np.nanmin(Y[w])) - 1


def transfer_bounds(Y, groups):
    M = ~np.isnan(Y)
    hindsight, nearest = [], []
    for w in range(len(Y)):
        others = [v for v in range(len(Y)) if groups[v] != groups[w]]
        optima = [int(np.nanargmin(Y[v])) for v in others]
        hindsight.append(min(regret(Y, w, j) for j in optima))

        def distance(v):
            m = M[w] & M[v]
            a, b = Y[w, m] - Y[w, m].mean(), Y[v, m] - Y[v, m].mean()
            return np.mean((a - b) ** 2)

        nearest.append(regret(Y, w, int(np.nanargmin(Y[min(others, key=distance)]))))
    return np.array(hindsight), np.array(nearest)


def main():
    W, E, Y, groups = load(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/envmatch/scout")
    M = ~np.isnan(Y)
    best = np.nanmin(Y, axis=1)
    print(f"{len(W)} workloads, {len(E)} environments, {M.sum()} completed runs")
    print("rank ridge  median   mean  top-1  residual sd (log)")
    for rank in (0, 1, 2, 3, 4):
        for ridge in (0.1, 1.0):
            F = fit(Y, rank, ridge)
            chosen = np.argmin(np.where(M, F, np.inf), axis=1)
            regret = np.exp(Y[np.arange(len(W)), chosen] - best) - 1
            resid = np.std((Y - F)[M])
            print(f"{rank:4d} {ridge:5.1f} {np.median(regret):7.3f} {np.mean(regret):6.3f} "
                  f"{int((regret < 1e-12).sum()):3d}/{len(W)}  {resid:.3f}")

    within = [int((np.exp(Y[w][M[w]] - best[w]) - 1 <= 0.05).sum()) for w in range(len(W))]
    chance = [n / M[w].sum() for w, n in enumerate(within)]
    print(f"environments within 5% of the cheapest: median {np.median(within):.0f} per workload "
          f"(min {min(within)}, max {max(within)}); a random pick lands there with median "
          f"probability {np.median(chance):.3f}")
    hindsight, nearest = transfer_bounds(Y, groups)
    for name, r in (("best of the other applications' optima, in hindsight", hindsight),
                    ("optimum of the most alike other-application workload", nearest)):
        print(f"{name}: median {np.median(r):.3f} mean {np.mean(r):.3f} "
              f"regret <= 0.05: {int((r <= 0.05).sum())}/{len(W)}")


if __name__ == "__main__":
    main()
