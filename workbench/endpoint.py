"""Models served over an OpenAI-compatible endpoint (vLLM, or any server that returns log-probs).

An ``EndpointSession`` implements the model contract (``workbench.contract``) as a ``Session``
does, for every black-box exploration: the sampler and the teacher-forced scorer
(``workbench.sampling``) send their jobs here as requests, and the tokenizer is local, so token ids, pieces, corpus lookups and chat templates work as
in-process. Prompts go to the server as token ids and tokens come back as ids (vLLM's
``return_tokens_as_token_ids``), with the raw log-prob of every sampled token (vLLM's default
``--logprobs-mode raw_logprobs``: before temperature and top-p, as the in-process sampler
records them). Requests run concurrently so that the server can batch them.

Reproducibility over an endpoint is the server's promise: seeds are sent only when the spec
asks for it (``send_seed``), since vLLM's CPU engine crashes on a seeded request.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import openai
from transformers import PreTrainedTokenizerBase

from workbench.config import ModelSpec, SamplingConfig
from workbench.contract import IncompleteRun, LanguageModel, ModelInfo, Output, Progress
from workbench.registry import load_tokenizer

API_KEY_VARIABLES = ("WORKBENCH_API_KEY", "OPENAI_API_KEY")  # read in this order; never stored or shown
TIMEOUT_S = 300.0  # one request; a long generation on a busy CPU server takes minutes
RETRIES = 2  # the openai client retries connection errors, 429 and 5xx with backoff
FALLBACK_CONTEXT = 2048
TOKEN_ID_PREFIX = "token_id:"
# Prompt log-probs one request at a time: vLLM 0.32's CPU engine with LoRA enabled dies when two
# requests that ask for them share a batch (its LoRA logits kernel takes one row per request).
SCORING_CONCURRENCY = 1


@dataclass(eq=False)
class EndpointSession(LanguageModel):
    """A served model: the local tokenizer, the server's facts and an openai client."""

    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    info: ModelInfo
    client: openai.OpenAI = field(repr=False)
    server: dict  # name, version, url: recorded with every result
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    has_weights = False
    full_distribution = False  # the sampled or scored tokens' log-probs only

    def sample_ids(
        self, prompts: Sequence[list[int]], seeds: Sequence[int], cfg: SamplingConfig, progress: Progress | None = None
    ) -> list[Output]:
        """One request per sample (each with its own seed when seeds are sent), run concurrently."""
        calls = [lambda p=p, s=s: _complete(self, p, cfg, s) for p, s in zip(prompts, seeds)]
        return _run_concurrently(self, calls, progress, "Sampled")

    def score_ids(
        self, encoded: Sequence[list[int]], batch_size: int = 16, progress: Progress | None = None
    ) -> list[np.ndarray]:
        """One echo request per row of two tokens or more; ``batch_size`` is the server's business."""
        scored = [ids for ids in encoded if len(ids) >= 2]
        calls = [lambda ids=ids: _prompt_logprobs(self, ids) for ids in scored]
        by_row = iter(_run_concurrently(self, calls, progress, "Scored", limit=SCORING_CONCURRENCY))
        return [np.asarray(next(by_row)) if len(ids) >= 2 else np.zeros(0) for ids in encoded]

    def card(self) -> dict[str, object]:
        """What the server tells, not the layer counts it does not."""
        info = self.info
        return {
            "name": info.name, "context_length": info.context_length, "vocab_size": info.vocab_size, **self.served_record(),
            "endpoint": self.spec.endpoint, "in_flight": self.spec.concurrency, "seeds": "sent" if self.spec.send_seed else "not sent",
        }  # fmt: skip

    def summary(self) -> str:
        return (
            f"{self.info.name}, served by {self.server['name']} {self.server['version']} at {self.spec.endpoint} "
            f"({self.info.context_length:,}-token context)"
        )

    def served_record(self, cfg: SamplingConfig | None = None) -> dict:
        """What results over this endpoint were made with: the server, the served model, the
        local tokenizer and the request parameters sent (no prompt, no key)."""
        record = {"server": self.server, "served_model": self.spec.name, "tokenizer": self.spec.tokenizer}
        if cfg is not None:
            record["request"] = {k: v for k, v in _parameters(self.spec, cfg, seed=0).items() if k != "seed"}
            record["request"]["seed"] = "each sample's own seed" if self.spec.send_seed else "not sent"
        return record

    def reproducibility_note(self) -> str:
        seeds = (
            "each sample's seed is sent"
            if self.spec.send_seed
            else "no seed is sent (the server does not take one safely)"
        )
        return (
            f"Served by {self.server['name']} {self.server['version']} at {self.server['url']}; {seeds}. Reproducibility "
            "over an endpoint is the server's promise, not the workbench's: the same settings may not give the same samples."
        )

    def weights_refusal(self, what: str) -> str:
        return (
            f"{what} needs the model's weights, and {self.info.name} is served at {self.spec.endpoint}, which "
            "gives completions and log-probs only. Load the model in-process for this."
        )


def api_key() -> str:
    """The key from the environment; servers started without --api-key accept any."""
    return next((os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), "none")


def base_url(endpoint: str) -> str:
    """The OpenAI base URL (ending in /v1) of an endpoint given with or without it."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1") else endpoint + "/v1"


def _failure(spec: ModelSpec, err: Exception) -> str:
    """A one-line, key-free account of a failed request."""
    if isinstance(err, openai.APITimeoutError):
        return f"the endpoint {spec.endpoint} did not answer within {TIMEOUT_S:.0f} s"
    if isinstance(err, openai.APIConnectionError):
        return f"cannot reach the endpoint {spec.endpoint} (is the server running?)"
    if isinstance(err, openai.AuthenticationError):
        return f"the endpoint {spec.endpoint} refused the API key (set {API_KEY_VARIABLES[0]})"
    if isinstance(err, openai.NotFoundError):
        return f"the endpoint {spec.endpoint} has no model {spec.name!r}"
    if isinstance(err, openai.APIStatusError):
        detail = (err.message or "").strip().splitlines()
        return f"the endpoint {spec.endpoint} answered {err.status_code}: {detail[0][:300] if detail else 'no detail'}"
    return f"the endpoint {spec.endpoint} failed: {type(err).__name__}: {str(err)[:300]}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _server_facts(spec: ModelSpec, served) -> dict:
    """The server's name and version: vLLM answers /version beside /v1."""
    root = base_url(spec.endpoint).removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/version", timeout=10) as answer:
            version = json.loads(answer.read()).get("version")
    except (OSError, ValueError, AttributeError):  # no /version: not vLLM, or an older one
        version = None
    name = (
        "vLLM"
        if version and getattr(served, "owned_by", "") == "vllm"
        else (getattr(served, "owned_by", None) or "unknown")
    )
    return {"name": name, "version": version or "unknown", "url": spec.endpoint}


def connect(spec: ModelSpec, progress: Progress | None = None) -> EndpointSession:
    """Check that the endpoint serves ``spec.name`` with log-probs and load the local tokenizer.

    Raises ValueError for an unreachable server, a model it does not serve, or a server that
    returns no log-probs."""
    if progress is not None:
        progress(0.0, f"Connecting to {spec.endpoint}")
    tokenizer = load_tokenizer(spec.tokenizer, progress)
    client = openai.OpenAI(base_url=base_url(spec.endpoint), api_key=api_key(), timeout=TIMEOUT_S, max_retries=RETRIES)
    try:
        models = {m.id: m for m in client.models.list().data}
    except openai.OpenAIError as err:
        raise ValueError(_sentence(_failure(spec, err)) + ".") from err
    if spec.name not in models:
        raise ValueError(
            f"The endpoint {spec.endpoint} serves {', '.join(sorted(models)) or 'no model'}, not {spec.name!r}."
        )
    served = models[spec.name]
    parent = models.get(getattr(served, "parent", None) or "")  # a served adapter's base model holds the length
    context = getattr(served, "max_model_len", None) or getattr(parent, "max_model_len", None) or FALLBACK_CONTEXT
    session = EndpointSession(
        spec,
        tokenizer,
        ModelInfo(
            name=spec.name,
            source=f"served at {spec.endpoint}",
            architecture="served",
            n_params=0,
            n_layers=0,
            n_heads=0,
            n_kv_heads=0,
            context_length=int(context),
            vocab_size=len(tokenizer),
            dtype="server's",
            device="endpoint",
            adapter=None,
        ),
        client,
        _server_facts(spec, served),
    )
    try:  # one token, to learn now rather than mid-run that log-probs do not come back
        _complete(session, tokenizer.encode("Hello"), SamplingConfig(max_new_tokens=1, temperature=0), 0)
    except openai.OpenAIError as err:
        raise ValueError(_sentence(_failure(spec, err)) + ".") from err
    if progress is not None:
        progress(1.0, f"Connected: {spec.name} on {session.server['name']} {session.server['version']}")
    return session


def _parameters(spec: ModelSpec, cfg: SamplingConfig, seed: int) -> dict:
    parameters = {
        "max_tokens": cfg.max_new_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "logprobs": 0,  # the sampled token's own log-prob, no alternatives
        "extra_body": {"top_k": cfg.top_k or -1, "return_tokens_as_token_ids": True},
    }
    if spec.send_seed:
        parameters["seed"] = seed
    return parameters


def _token_ids(tokens: Sequence[str]) -> list[int]:
    if not all(t.startswith(TOKEN_ID_PREFIX) for t in tokens):
        raise ValueError("The server does not return tokens as ids (vLLM's return_tokens_as_token_ids).")
    return [int(t.removeprefix(TOKEN_ID_PREFIX)) for t in tokens]


def _complete(session: EndpointSession, prompt: list[int], cfg: SamplingConfig, seed: int) -> Output:
    """One sample of one prompt: (token ids without the stop token, their log-probs, stop reason)."""
    response = session.client.completions.create(
        model=session.spec.name, prompt=prompt, **_parameters(session.spec, cfg, seed)
    )
    choice = response.choices[0]
    if choice.logprobs is None or choice.logprobs.token_logprobs is None:
        raise ValueError(f"The endpoint {session.spec.endpoint} returned no log-probs.")
    ids = _token_ids(choice.logprobs.tokens)
    logprobs = [float(v) for v in choice.logprobs.token_logprobs]
    stopped = choice.finish_reason == "stop"
    if stopped and ids and ids[-1] in session.tokenizer.all_special_ids:
        ids, logprobs = ids[:-1], logprobs[:-1]  # the in-process sampler leaves the stop token out too
    return ids, logprobs, "eos" if stopped else "length"


def _run_concurrently(
    session: EndpointSession,
    calls: Sequence[Callable[[], object]],
    progress: Progress | None,
    label: str,
    limit: int | None = None,
) -> list:
    """Results of ``calls`` in order, ``limit`` (default ``spec.concurrency``) in flight at a time.
    The first failure stops what has not started and raises IncompleteRun holding what has come back."""
    results: dict[int, object] = {}
    with ThreadPoolExecutor(max_workers=limit or session.spec.concurrency) as pool:
        futures = {pool.submit(call): index for index, call in enumerate(calls)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            failed = None
            for future in done:
                if future.exception() is None:
                    results[futures[future]] = future.result()
                else:
                    failed = failed or future.exception()
            if failed is not None:
                for future in pending:
                    future.cancel()
                wait(pending)
                for future in pending:
                    if not future.cancelled() and future.exception() is None:
                        results[futures[future]] = future.result()
                message = _failure(session.spec, failed) if isinstance(failed, openai.OpenAIError) else str(failed)
                raise IncompleteRun(
                    f"{_sentence(message)}; {len(results)} of {len(calls)} requests had completed.", results
                ) from failed
            if progress is not None:
                progress(len(results) / len(calls), f"{label} {len(results)}/{len(calls)}")
    return [results[i] for i in range(len(calls))]


def _prompt_logprobs(session: EndpointSession, ids: list[int]) -> list[float]:
    """Teacher-forced log p(token_t | tokens_<t), t ≥ 1, by echoing the prompt with its log-probs."""
    response = session.client.completions.create(
        model=session.spec.name,
        prompt=ids,
        max_tokens=1,
        temperature=0,
        echo=True,
        logprobs=0,
        extra_body={"return_tokens_as_token_ids": True},
    )
    values = response.choices[0].logprobs.token_logprobs if response.choices[0].logprobs else None
    if not values or len(values) < len(ids):
        raise ValueError(f"The endpoint {session.spec.endpoint} returned no prompt log-probs (echo with logprobs).")
    return [float(v) for v in values[1 : len(ids)]]
