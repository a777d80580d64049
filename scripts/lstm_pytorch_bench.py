#!/usr/bin/env python3
"""The LSTM forecaster's architecture in PyTorch (Debian python3-torch), timed like
bench/lstm_bench.cpp: streaming step for 1 / 100 / 10,000 workloads and one training step on a
[72 x 64] chunk. Usage: /usr/bin/python3 scripts/lstm_pytorch_bench.py [--threads 2]"""
import argparse
import time

import torch
import torch.nn.functional as F

INPUTS, HIDDEN, HORIZON, RESOURCES = 46, 48, 12, 4  # as models/lstm-bitbrains.fsm (since 2026-12-06)
LEVELS = [0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995]
OUTPUTS = RESOURCES * HORIZON * len(LEVELS)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(INPUTS, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, OUTPUTS)

    def forward(self, x, state=None):
        out, state = self.lstm(x, state)
        raw = self.head(out)
        g = raw.reshape(-1, len(LEVELS))
        q = torch.cat([g[:, :1], F.softplus(g[:, 1:])], 1).cumsum(1)
        return q.reshape(raw.shape), state


def timeit(fn, min_time=2.0):
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - start
        if el >= min_time:
            return el / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = Net().eval()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for b in (1, 100, 10000):
        x = torch.randn(1, b, INPUTS)
        state = [(torch.zeros(1, b, HIDDEN), torch.zeros(1, b, HIDDEN))]

        def step():
            with torch.inference_mode():
                _, state[0] = net(x, state[0])

        t = timeit(step)
        print(f"streaming step, {b} workloads: {t * 1e3:.3f} ms")
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    T, B = 72, 64
    x = torch.randn(T, B, INPUTS)
    y = torch.rand(T, B, RESOURCES, HORIZON)
    tau = torch.tensor(LEVELS)

    def train_step():
        q, _ = net(x)
        diff = y.unsqueeze(-1) - q.reshape(T, B, RESOURCES, HORIZON, len(LEVELS))
        loss = torch.max(tau * diff, (tau - 1) * diff).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    t = timeit(train_step)
    print(f"train step [72 x 64]: {t * 1e3:.2f} ms = {T * B / t:.0f} series-steps/s")


if __name__ == "__main__":
    main()
