"""Global grouping of tracklets into targets: correlation clustering with hard cannot-links.

Nodes are tracklets, edge weights the pair scores of
:mod:`mctrack.associate.evidence` (positive: same target more likely; negative:
different targets). A grouping maximises the sum of the weights inside groups
(correlation clustering / minimum-cost multicut; Bansal, Blum & Chawla,
Machine Learning 2004) subject to **cannot-links**: two tracklets of one camera
whose alive intervals (first row .. last detected row, coasted rows in between
included) overlap never share a group — a camera cannot see one target twice
in one frame. Tracklets of one camera that do not overlap may share a group, so
one target can have several fragments per camera over time.

The graph is split into connected components of its positive edges (a group
never spans two of them). A component of at most ``exact_max_nodes``
tracklets is solved exactly as an integer program (``x_ij = 1`` when i and j
share a group; triangle inequalities ``x_ij + x_jk − x_ik ≤ 1`` for
transitivity; cannot-links fix ``x_ij = 0``) with ``scipy.optimize.milp``
(HiGHS). Larger components, or a MILP that does not finish in its time limit,
use greedy additive edge contraction (GAEC; Keuper et al., ICCV 2015): merge
the two groups with the largest positive summed weight between them that
violate no cannot-link, until none is left.

The **support** of a group is its weakest link: the smallest pair support on
the maximum spanning tree of its positive edges (0 when the group is held
together by no positive edge chain); NaN for a group of one tracklet.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

log = logging.getLogger("mctrack.associate")

_MILP_TIME_LIMIT_S = 5.0


def _overlaps(iv_a: dict, iv_b: dict) -> bool:
    """Whether two groups' per-camera intervals overlap in any camera.

    ``iv`` maps camera -> ``(starts, ends)`` sorted lists of the disjoint
    alive intervals of the group's tracklets in that camera (disjoint because
    a group never holds two overlapping tracklets of one camera), so each
    interval of the smaller side is checked with one binary search.
    """
    for cam, (sa, ea) in iv_a.items():
        other = iv_b.get(cam)
        if other is None:
            continue
        sb, eb = other
        if len(sa) > len(sb):
            sa, ea, sb, eb = sb, eb, sa, ea
        for s, e in zip(sa, ea):
            k = bisect.bisect_right(sb, e) - 1  # last interval of b starting at or before e
            if k >= 0 and eb[k] >= s:
                return True
    return False


def _merge_iv(iv_a: dict, iv_b: dict) -> None:
    """Add ``iv_b``'s intervals to ``iv_a`` keeping each camera's lists sorted."""
    for cam, (sb, eb) in iv_b.items():
        if cam not in iv_a:
            iv_a[cam] = (list(sb), list(eb))
            continue
        pairs = sorted(zip(iv_a[cam][0] + sb, iv_a[cam][1] + eb))
        iv_a[cam] = ([p[0] for p in pairs], [p[1] for p in pairs])


def cannot_link_matrix(nodes: np.ndarray, cam: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``(n, n)`` bool: tracklets ``nodes`` of one camera with overlapping ``[start, end]`` frames."""
    c, s, e = cam[nodes], start[nodes], end[nodes]
    return (c[:, None] == c[None, :]) & (s[:, None] <= e[None, :]) & (s[None, :] <= e[:, None]) & \
        ~np.eye(len(nodes), dtype=bool)


def _gaec(nodes: np.ndarray, edges: list[tuple[int, int, float]], cam, start, end,
          extra_cannot: set[tuple[int, int]]) -> dict[int, int]:
    """Greedy additive edge contraction of ``nodes``; returns node -> representative node."""
    adj: dict[int, dict[int, float]] = {int(n): {} for n in nodes}
    for a, b, w in edges:
        adj[a][b] = adj[a].get(b, 0.0) + w
        adj[b][a] = adj[b].get(a, 0.0) + w
    for a, b in extra_cannot:
        if a in adj and b in adj:
            adj[a][b] = adj[b][a] = -np.inf
    iv = {int(n): {int(cam[n]): ([int(start[n])], [int(end[n])])} for n in nodes}
    members = {int(n): [int(n)] for n in nodes}
    heap = [(-w, a, b) for a, nb in adj.items() for b, w in nb.items() if a < b and w > 0]
    heapq.heapify(heap)
    while heap:
        negw, a, b = heapq.heappop(heap)
        if a not in members or b not in members or adj[a].get(b) != -negw:
            continue
        if _overlaps(iv[a], iv[b]):
            adj[a][b] = adj[b][a] = -np.inf  # intervals only grow: the conflict is permanent
            continue
        if len(members[a]) < len(members[b]):
            a, b = b, a
        members[a] += members.pop(b)
        _merge_iv(iv[a], iv.pop(b))
        for c, w in adj.pop(b).items():
            del adj[c][b]
            if c == a:
                continue
            nw = adj[a].get(c, 0.0) + w
            adj[a][c] = adj[c][a] = nw
            if nw > 0:
                heapq.heappush(heap, (-nw, min(a, c), max(a, c)))
    return {m: r for r, ms in members.items() for m in ms}


def _milp(nodes: np.ndarray, edges: list[tuple[int, int, float]], cannot: np.ndarray,
          extra_cannot: set[tuple[int, int]]) -> dict[int, int] | None:
    """Exact correlation clustering of a small component; None when HiGHS does not prove optimality in time."""
    n = len(nodes)
    pos = {int(v): i for i, v in enumerate(nodes)}
    pairs = list(itertools.combinations(range(n), 2))
    var = {p: k for k, p in enumerate(pairs)}
    c = np.zeros(len(pairs))
    for a, b, w in edges:
        i, j = sorted((pos[a], pos[b]))
        c[var[(i, j)]] -= w  # milp minimises
    ub = np.ones(len(pairs))
    for (i, j), k in var.items():
        if cannot[i, j] or (int(nodes[i]), int(nodes[j])) in extra_cannot or (int(nodes[j]), int(nodes[i])) in extra_cannot:
            ub[k] = 0
    rows, cols, vals = [], [], []
    r = 0
    for i, j, k in itertools.combinations(range(n), 3):
        ij, jk, ik = var[(i, j)], var[(j, k)], var[(i, k)]
        for x, y, z in ((ij, jk, ik), (ij, ik, jk), (ik, jk, ij)):
            rows += [r, r, r]
            cols += [x, y, z]
            vals += [1.0, 1.0, -1.0]
            r += 1
    cons = [LinearConstraint(coo_matrix((vals, (rows, cols)), shape=(r, len(pairs))).tocsr(), -np.inf, 1.0)] if r else []
    res = milp(c, constraints=cons, integrality=np.ones(len(pairs)), bounds=Bounds(np.zeros(len(pairs)), ub),
               options={"time_limit": _MILP_TIME_LIMIT_S})
    if res.status != 0 or res.x is None:
        return None
    x = np.round(res.x).astype(bool)
    same = np.zeros((n, n), bool)
    for (i, j), k in var.items():
        same[i, j] = same[j, i] = x[k]
    _, lab = connected_components(same, directed=False)
    rep = {}
    for i in range(n):
        rep.setdefault(lab[i], int(nodes[i]))
    return {int(nodes[i]): rep[lab[i]] for i in range(n)}


def solve_groups(n_nodes: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, cam: np.ndarray, start: np.ndarray,
                 end: np.ndarray, exact_max_nodes: int = 20,
                 extra_cannot: set[tuple[int, int]] | None = None) -> np.ndarray:
    """Group ``n_nodes`` tracklets; returns ``(n_nodes,)`` int64 group labels (0..G-1, by first member).

    ``a, b, w``: edges (node indices, weights); ``cam, start, end``: per-node
    camera index and alive interval (frames) for the cannot-links;
    ``extra_cannot``: further forbidden node pairs (e.g. from 3D feedback).
    """
    extra_cannot = extra_cannot or set()
    a, b, w = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(w, np.float64)
    posi = w > 0
    g = coo_matrix((np.ones(posi.sum()), (a[posi], b[posi])), shape=(n_nodes, n_nodes))
    n_comp, comp = connected_components(g, directed=False)
    rep = np.arange(n_nodes)
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(n_comp + 1))
    same = comp[a] == comp[b]  # negative edges between components never matter
    a, b, w = a[same], b[same], w[same]
    ecomp = comp[a]
    eorder = np.argsort(ecomp, kind="stable")
    ebounds = np.searchsorted(ecomp[eorder], np.arange(n_comp + 1))
    n_exact = n_greedy = 0
    for k in range(n_comp):
        nodes = order[bounds[k]:bounds[k + 1]]
        if len(nodes) < 2:
            continue
        es = eorder[ebounds[k]:ebounds[k + 1]]
        edges = list(zip(a[es].tolist(), b[es].tolist(), w[es].tolist()))
        mapping = None
        if len(nodes) <= exact_max_nodes:
            cl = cannot_link_matrix(nodes, cam, start, end)
            mapping = _milp(nodes, edges, cl, extra_cannot)
            n_exact += mapping is not None
        if mapping is None:
            mapping = _gaec(nodes, edges, cam, start, end, extra_cannot)
            n_greedy += 1
        for node, r in mapping.items():
            rep[node] = r
    log.debug("grouping: %d components solved exactly, %d greedily", n_exact, n_greedy)
    _, labels = np.unique(rep, return_inverse=True)
    return labels.astype(np.int64)


def group_support(labels: np.ndarray, a: np.ndarray, b: np.ndarray, score: np.ndarray,
                  support: np.ndarray) -> np.ndarray:
    """Weakest link per group: ``(G,)`` float64 (see module docstring)."""
    G = int(labels.max()) + 1 if len(labels) else 0
    out = np.full(G, np.nan)
    size = np.bincount(labels, minlength=G)
    inside = (labels[a] == labels[b]) & (score > 0)
    n = len(labels)
    # maximum spanning forest on support == minimum spanning forest on (2 - support) > 0
    m = coo_matrix((2.0 - support[inside], (a[inside], b[inside])), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(m).tocoo()
    tree_sup = 2.0 - tree.data
    grp = labels[tree.row]
    multi = size >= 2
    out[multi] = np.inf
    np.minimum.at(out, grp, tree_sup)
    n_tree = np.bincount(grp, minlength=G)
    out[multi & (n_tree < size - 1)] = 0.0  # not connected by positive links alone
    return out
