#!/usr/bin/env python3
"""Writes an OpenMetrics history for timing `foresight import prometheus` at cluster scale: N
workloads (labels ns, pod) x 14 days at 5-minute steps of two gauges, m_cpu (cores) and m_mem
(bytes), each a daily cycle with noise. Backfill it with promtool and serve it (docs/results.md):

    python3 scripts/prometheus_scale_history.py 1000 history.om
    promtool tsdb create-blocks-from openmetrics history.om data
"""
import math
import random
import sys

n, out = int(sys.argv[1]), sys.argv[2]
random.seed(1)
steps, start = 4032, 1764000000  # a multiple of 300: samples on the import's grid
with open(out, 'w') as f:
    for metric in ('m_cpu', 'm_mem'):
        f.write(f'# TYPE {metric} gauge\n')
        for w in range(n):
            base = random.uniform(0.1, 4) if metric == 'm_cpu' else random.uniform(1e8, 8e9)
            f.write(''.join(
                f'{metric}{{ns="n{w % 20}",pod="p{w}"}} '
                f'{base * (1 + 0.3 * math.sin(i * 2 * math.pi / 288 + w)) * random.uniform(0.8, 1.2):.6g} '
                f'{start + 300 * i}\n' for i in range(steps)))
    f.write('# EOF\n')
print(f'{out}: {n} workloads, {start} to {start + 300 * (steps - 1)}')
