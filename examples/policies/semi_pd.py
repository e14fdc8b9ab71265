#!/usr/bin/env python3
"""semi-PD's SLO-aware dynamic partitioning (Algorithm 1 of the semi-PD paper) as a pdspec policy in Python.

Standard library only. Check it with

    npx pdspec monotonicity M2 exec:'python3 examples/policies/semi_pd.py'
    npx pdspec check --policy exec:'python3 examples/policies/semi_pd.py'

It speaks the JSON Lines protocol of docs/policy-protocol.md on standard input and output (diagnostics go to
standard error), and decides exactly as the built-in `semi-pd` (engine/policies/semi-pd.ts) does:

  every window (the policy's interval):
    1. read the window's TTFT and TPOT at the chosen percentile (p90 by default);
    2. add (share, latency) points to the history and refit TTFT(x) = a1/(x - lam) + b1 and
       TPOT(y) = a2/y + b2 by least squares, pulled lightly towards a prior read off the latency model;
    3. TTFT over its SLO -> raise the prefill share step by step until the model predicts TTFT <= SLO;
       TPOT over its SLO -> raise the decode share until the model predicts TPOT <= SLO;
       both over         -> the split minimising the worse predicted SLO ratio;
       both within       -> keep the split.
"""

import json
import math
import sys

PROTOCOL = "pdspec-policy"
VERSION = 1

# semi-PD's published fit for Llama3-8B (seconds, shares as fractions).
LLAMA3_8B_FIT = {"a1": 0.6809, "b1": 0.022, "a2": 0.6284, "b2": 0.3818}
OVERLOAD_SCORE = 1e12
OPTIONS = ("percentile", "step", "shareBudget", "window", "minSamples", "history", "ridge", "prior", "promptTokens")


class OptionError(Exception):
    pass


# --- the protocol ---------------------------------------------------------------------------------------


def send(message):
    # allow_nan=False: NaN and Infinity are not JSON; pdspec would reject the line as malformed.
    sys.stdout.write(json.dumps(message, allow_nan=False) + "\n")
    sys.stdout.flush()


def receive():
    line = sys.stdin.readline()
    if line == "":
        return None
    return json.loads(line)


class Model:
    """Observation.model over the protocol: each call asks pdspec, which answers from its latency profile."""

    def __init__(self, seq):
        self.seq = seq

    def _ask(self, fn, args):
        send({"type": "model", "seq": self.seq, "fn": fn, "args": args})
        reply = receive()
        if reply is None or reply.get("type") != "model" or reply.get("seq") != self.seq:
            raise RuntimeError("no answer to a latency-model query")
        if "error" in reply:
            raise RuntimeError(reply["error"])
        value = reply["value"]
        return math.inf if value is None else value

    def prefill_time(self, share, tokens):
        return self._ask("prefillTime", [share, tokens])

    def decode_time(self, share, batch, context_tokens):
        return self._ask("decodeTime", [share, batch, context_tokens])


def serve(name, make, interval, claims_monotone=False):
    """Answers pdspec: the handshake, then one decision per observation, one instance per instance number."""
    hello = receive()
    if hello is None:
        return
    if hello.get("type") != "hello" or hello.get("version") != VERSION:
        send({"type": "hello", "protocol": PROTOCOL, "version": VERSION, "name": name})
        return
    options = hello.get("options") or {}
    try:
        instances = {0: make(options)}
        window = interval(options)
    except OptionError as err:
        send({"type": "error", "message": str(err)})
        return
    send({"type": "hello", "protocol": PROTOCOL, "version": VERSION, "name": name,
          "claimsMonotone": claims_monotone, "interval": window, "instances": True})
    while True:
        message = receive()
        if message is None:
            return
        kind = message.get("type")
        if kind == "drop":
            instances.pop(message["instance"], None)
        elif kind == "observe":
            seq = message["seq"]
            instance = message["instance"]
            if instance not in instances:
                instances[instance] = make(options)
            try:
                decision = instances[instance].decide(message["observation"], Model(seq))
            except Exception as err:  # reported to pdspec as this observation's fault
                send({"type": "error", "seq": seq, "message": f"{type(err).__name__}: {err}"})
                continue
            send({"type": "decision", "seq": seq, "decision": decision})


# --- the fitted latency forms ---------------------------------------------------------------------------


def predict_ttft(c, x, lam):
    return c["a1"] / (x - lam) + c["b1"] if x > lam else math.inf


def predict_tpot(c, y):
    return c["a2"] / y + c["b2"] if y > 0 else math.inf


def finite(value):
    return value is not None and math.isfinite(value)


def prefill_load(obs, model, mean_prompt):
    """The offered prefill load as a fraction of the GPU: arrival rate x one average prompt's prefill time at 100 %."""
    rate = obs["arrivalRate"]
    if not (finite(rate) and rate > 0) or not mean_prompt > 0:
        return 0
    lam = rate * model.prefill_time(100, mean_prompt)
    return lam if math.isfinite(lam) and lam > 0 else 0


def fit_line(samples, prior, ridge):
    """Least squares for latency = a * feature + b, pulled towards the prior, clamped to a, b >= 0."""
    su = suu = st = sut = 0.0
    for feature, latency in samples:
        su += feature
        suu += feature * feature
        st += latency
        sut += feature * latency
    n = len(samples)
    m11 = suu + ridge
    m12 = su
    m22 = n + ridge
    r1 = sut + ridge * prior[0]
    r2 = st + ridge * prior[1]
    det = m11 * m22 - m12 * m12
    if not abs(det) > 1e-300:
        return prior
    a = (r1 * m22 - m12 * r2) / det
    b = (m11 * r2 - m12 * r1) / det
    if a < 0:
        a = 0
        b = (st + ridge * prior[1]) / m22
    if b < 0:
        b = 0
        a = max(0, (sut + ridge * prior[0]) / m11)
    return (a, b) if math.isfinite(a) and math.isfinite(b) else prior


def model_prior(obs, model, mean_prompt):
    """Coefficients read off the latency model for the current workload: the refit's prior."""
    a1 = model.prefill_time(100, mean_prompt)
    batch = max(1, obs["decodeBatch"]["requests"])
    context = max(obs["decodeBatch"]["contextTokens"], mean_prompt)
    samples = [(100 / share, model.decode_time(share, batch, context)) for share in (25, 50, 75, 100)]
    a2, b2 = fit_line(samples, (0, 0), 1e-12)
    keep = lambda v: v if math.isfinite(v) and v >= 0 else 0
    return {"a1": keep(a1), "b1": 0, "a2": keep(a2), "b2": keep(b2)}


def raise_until(start, limit, step, meets):
    """The upward search with bug-zoo Z14 fixed: bounded, and the cap when no share meets the SLO."""
    if start >= limit:
        return limit
    share = start
    for _ in range(math.ceil((limit - start) / step)):
        share = min(limit, share + step)
        if meets(share):
            return share
    return limit


def balance(prefill, decode, limit, decode_for, score):
    """Both SLOs fail: the split with the lowest worse-ratio score, ties to the nearest one."""
    best = {"prefill": prefill, "decode": decode}
    best_score = math.inf
    best_distance = math.inf
    for p in range(1, limit + 1):
        d = decode_for(p)
        if d < 1:
            continue
        s = score(p, d)
        distance = abs(p - prefill) + abs(d - decode)
        if s < best_score or (s == best_score and distance < best_distance):
            best = {"prefill": p, "decode": d}
            best_score = s
            best_distance = distance
    return best


# --- the policy -----------------------------------------------------------------------------------------


def number(options, key, fallback, low, high=math.inf, integer=False):
    raw = options.get(key)
    if raw is None:
        return fallback
    value = raw
    if isinstance(raw, str) and raw.strip() != "":
        try:
            value = float(raw)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        rng = f">= {low}" if high == math.inf else f"in {low}..{high}"
        raise OptionError(f"option '{key}' must be a number {rng}, got {json.dumps(raw)}")
    if integer:
        if value != int(value):
            raise OptionError(f"option '{key}' must be an integer, got {json.dumps(raw)}")
        return int(value)
    return value


def config_of(options):
    for key in options:
        if key not in OPTIONS:
            raise OptionError(f"unknown option '{key}' for policy 'semi-pd-py' (known: {', '.join(OPTIONS)})")
    prior = options.get("prior", "model")
    if isinstance(prior, dict):
        if any(not isinstance(prior.get(k), (int, float)) or prior.get(k) < 0 for k in ("a1", "b1", "a2", "b2")):
            raise OptionError("option 'prior' must be 'model', 'published' or { a1, b1, a2, b2 } with finite numbers >= 0")
        prior = {k: prior[k] for k in ("a1", "b1", "a2", "b2")}
    elif prior not in ("model", "published"):
        raise OptionError("option 'prior' must be 'model', 'published' or { a1, b1, a2, b2 } with finite numbers >= 0")
    percentile = options.get("percentile", "p90")
    if percentile not in ("p50", "p90", "p99"):
        raise OptionError(f"option 'percentile' must be one of p50, p90, p99, got {json.dumps(percentile)}")
    return {
        "percentile": percentile,
        "step": number(options, "step", 1, 1, 99, integer=True),
        "shareBudget": number(options, "shareBudget", 180, 100, 200, integer=True),
        "window": number(options, "window", 5, 1e-6),
        "minSamples": number(options, "minSamples", 1, 1, integer=True),
        "history": number(options, "history", 32, 1, integer=True),
        "ridge": number(options, "ridge", 1e-3, 1e-12),
        "prior": prior,
        "promptTokens": number(options, "promptTokens", 1024, 1),
    }


class SemiPd:
    def __init__(self, options):
        self.config = config_of(options)
        self.ttft_samples = []
        self.tpot_samples = []
        prior = self.config["prior"]
        self.coefficients = dict(prior) if isinstance(prior, dict) else dict(LLAMA3_8B_FIT)
        self.mean_prompt = self.config["promptTokens"]

    def observed(self, p):
        value = p[self.config["percentile"]]
        return value if p["count"] >= self.config["minSamples"] and finite(value) else None

    def push(self, samples, item):
        samples.append(item)
        del samples[: max(0, len(samples) - self.config["history"])]

    def decide(self, obs, model):
        config = self.config
        lengths = obs["prefillQueue"]["promptLengths"]
        if lengths:
            self.mean_prompt = sum(lengths) / len(lengths)
        load = prefill_load(obs, model, self.mean_prompt)

        exact = obs["shareRule"] == "exact"
        cap = 100 if exact else config["shareBudget"]
        limit = min(100, cap - 1)
        split = obs["split"]
        prefill = min(limit, max(1, split["prefill"]))
        decode = min(limit, max(1, split["decode"]))
        x = split["prefill"] / 100
        y = split["decode"] / 100

        ttft = self.observed(obs["ttft"])
        tpot = self.observed(obs["tpot"])
        if ttft is not None and x > load:
            self.push(self.ttft_samples, (1 / (x - load), ttft))
        if tpot is not None and y > 0:
            self.push(self.tpot_samples, (1 / y, tpot))
        prior = config["prior"]
        if prior == "model":
            prior = model_prior(obs, model, self.mean_prompt)
        elif prior == "published":
            prior = LLAMA3_8B_FIT
        a1, b1 = fit_line(self.ttft_samples, (prior["a1"], prior["b1"]), config["ridge"])
        a2, b2 = fit_line(self.tpot_samples, (prior["a2"], prior["b2"]), config["ridge"])
        c = self.coefficients = {"a1": a1, "b1": b1, "a2": a2, "b2": b2}

        slo = obs["slo"]
        ttft_fails = ttft is not None and ttft > slo["ttft"]
        tpot_fails = tpot is not None and tpot > slo["tpot"]
        if not ttft_fails and not tpot_fails:
            return {}

        ttft_at = lambda share: predict_ttft(c, share / 100, load)
        tpot_at = lambda share: predict_tpot(c, share / 100)
        partner = lambda share, current: 100 - share if exact else min(current, cap - share)

        if ttft_fails and not tpot_fails:
            p = raise_until(prefill, limit, config["step"], lambda s: ttft_at(s) <= slo["ttft"])
            nxt = {"prefill": p, "decode": partner(p, decode)}
        elif tpot_fails and not ttft_fails:
            d = raise_until(decode, limit, config["step"], lambda s: tpot_at(s) <= slo["tpot"])
            nxt = {"prefill": partner(d, prefill), "decode": d}
        else:
            def ttft_score(p):
                return ttft_at(p) / slo["ttft"] if p / 100 > load else OVERLOAD_SCORE * (1 + load - p / 100)

            nxt = balance(prefill, decode, limit, lambda p: 100 - p if exact else min(100, cap - p),
                          lambda p, d: max(ttft_score(p), tpot_at(d) / slo["tpot"]))
        if nxt["prefill"] == split["prefill"] and nxt["decode"] == split["decode"]:
            return {}
        return {"split": nxt}


if __name__ == "__main__":
    serve("semi-pd-py", SemiPd, lambda options: config_of(options)["window"])
