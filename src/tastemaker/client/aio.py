"""``AsyncClient``: :class:`~.sync.Client` for asyncio (the same methods, awaited; the same retries, idempotency
keys and errors, from :mod:`.http`). ``generate_local`` renders in a worker thread, so the event loop stays free."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ..errors import JobFinishedError, TastemakerError
from . import calls, local
from .http import (
    DEFAULT_TIMEOUT,
    Call,
    FileInput,
    Retry,
    SSEParser,
    checked,
    should_retry,
    transport_retry,
    unreachable,
)
from .models import (
    AccountDeleted,
    BoardInfo,
    FeedbackResult,
    Generation,
    LocalGeneration,
    LocalImage,
    PinsAdded,
    ProfileHistory,
    RegisteredRecord,
    StyleEmbed,
    Usage,
    VerifyResult,
)

OnProgress = Callable[[Generation], None]
#: outputs in flight at once in ``generate_local`` (one is uploaded and sent back while the server marks another)
REGISTER_CONCURRENCY = 2


class AsyncClient:
    """A Tastemaker server, as typed coroutines: ``await AsyncClient(url, api_key).usage()``.

    ``timeout`` (seconds, or an ``httpx.Timeout``) bounds each try; ``retry`` says how 429/503 and dropped
    connections are retried (:class:`~.http.Retry`). ``httpx_options`` go to ``httpx.Client`` (``transport``,
    ``event_hooks``, ``verify``, ``proxy``...). Use as an async context manager, or :meth:`aclose` it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        **httpx_options: Any,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or Retry()
        headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "tastemaker-client",
                   **httpx_options.pop("headers", {})}
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout, **httpx_options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ sending
    async def send(self, call: Call) -> httpx.Response:
        """Send ``call`` with the retry policy; the response of a success, the library's exception otherwise."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return checked(await self.http.request(call.method, call.path, **call.kwargs()))
            except TastemakerError as exc:
                wait = should_retry(exc, call, attempt, self.retry)
                if wait is None:
                    raise
            except httpx.TransportError as exc:
                wait = transport_retry(exc, call, attempt, self.retry)
                if wait is None:
                    raise unreachable(self.base_url, call, exc) from exc
            await asyncio.sleep(wait)

    async def _json(self, call: Call) -> Any:
        return (await self.send(call)).json()

    # ------------------------------------------------------------------ boards and taste
    async def create_board(
        self, name: str, images: Sequence[FileInput], pins: list[dict[str, Any]] | None = None
    ) -> BoardInfo:
        """Upload a board: images (paths, bytes or (name, bytes)) and their engagement (``pins``, by file name)."""
        return BoardInfo.model_validate(await self._json(calls.create_board(name, images, pins)))

    async def get_board(self, board_id: str) -> BoardInfo:
        return BoardInfo.model_validate(await self._json(Call("GET", f"/v1/boards/{board_id}", safe=True)))

    async def delete_board(self, board_id: str) -> None:
        await self.send(Call("DELETE", f"/v1/boards/{board_id}", safe=True))

    async def add_pins(
        self, board_id: str, images: Sequence[FileInput], pins: list[dict[str, Any]] | None = None
    ) -> PinsAdded:
        return PinsAdded.model_validate(await self._json(calls.add_pins(board_id, images, pins)))

    async def profile_history(self, board_id: str) -> ProfileHistory:
        return ProfileHistory.model_validate(
            await self._json(Call("GET", f"/v1/boards/{board_id}/profile/history", safe=True)))

    async def styleembed(self, board_id: str) -> StyleEmbed:
        """The board's differentially private taste release (its modes and a portable profile)."""
        call = Call("POST", "/v1/styleembed", json={"board_id": board_id}, idempotent_key=True)
        return StyleEmbed.model_validate(await self._json(call))

    # ------------------------------------------------------------------ generations
    async def submit(
        self,
        *,
        board_id: str | None = None,
        profile: dict[str, Any] | None = None,
        selfie: FileInput | None = None,
        identity: Any = None,
        consent: bool,
        **options: Any,
    ) -> Generation:
        """Start a generation (``prompt``, ``n``, ``size``, ``aspect``, ``output_format``, ``strength``, ``seed``,
        ``background``, ``framing``, ``mode``, ``face_index``): the job, queued. Retried safely: one
        Idempotency-Key per call, so a retry never makes a second job."""
        call = calls.submit(selfie=selfie, identity=identity, board_id=board_id, profile=profile, consent=consent,
                            options=options)
        return Generation.model_validate(await self._json(call))

    async def get_generation(self, generation_id: str) -> Generation:
        return Generation.model_validate(await self._json(Call("GET", f"/v1/generations/{generation_id}", safe=True)))

    async def wait(self, generation_id: str, *, on_progress: OnProgress | None = None,
             timeout: float | None = None) -> Generation:
        """Follow the job's server-sent events until it ends; ``on_progress`` gets every update. A dropped stream
        is resumed; ``timeout`` (seconds) raises :class:`TimeoutError` if the job has not ended by then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"generation {generation_id} did not end within {timeout:g} s")
            stream_timeout = httpx.Timeout(self.http.timeout.connect, read=remaining)
            try:
                async with self.http.stream("GET", f"/v1/generations/{generation_id}/events",
                                            timeout=stream_timeout) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        checked(resp)
                    parser = SSEParser()
                    async for line in resp.aiter_lines():
                        for _, data in parser.feed(line):
                            job = Generation.model_validate(data)
                            if on_progress is not None:
                                on_progress(job)
                            if job.done:
                                return job
            except httpx.ReadTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"generation {generation_id} did not end within {timeout:g} s") from None
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= self.retry.attempts:
                    events = Call("GET", f"/v1/generations/{generation_id}/events")
                    raise unreachable(self.base_url, events, exc) from exc
            job = await self.get_generation(generation_id)  # the stream ended early: look, then listen again
            if job.done:
                return job
            await asyncio.sleep(self.retry.delay(max(1, attempt), None))

    async def cancel(self, generation_id: str) -> Generation:
        """Cancel a queued or running generation (its images go back to the quota)."""
        try:
            return Generation.model_validate(await self._json(Call("POST", f"/v1/generations/{generation_id}/cancel")))
        except JobFinishedError:
            job = await self.get_generation(generation_id)
            if job.status == "cancelled":  # a retry of a cancel that went through
                return job
            raise

    async def download(self, generation_id: str, index: int = 0) -> bytes:
        """One output image's file."""
        return (await self.send(Call("GET", f"/v1/generations/{generation_id}/images/{index}", safe=True))).content

    async def download_all(self, generation: Generation, folder: str | Path) -> list[Path]:
        """Every output of a finished generation into ``folder``; returns the files written."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
        paths = []
        for im in generation.images:
            path = out / f"{generation.id}_{im.index}.{ext.get(im.media_type, 'bin')}"
            path.write_bytes(await self.download(generation.id, im.index))
            paths.append(path)
        return paths

    async def generate(self, *, on_progress: OnProgress | None = None, timeout: float | None = None,
                 **submit_args: Any) -> Generation:
        """:meth:`submit`, then :meth:`wait`; the finished job, or its error raised (the library's class)."""
        job = await self.submit(**submit_args)
        return (await self.wait(job.id, on_progress=on_progress, timeout=timeout)).raise_for_status()

    # ------------------------------------------------------------------ feedback, provenance, account
    async def feedback(self, action: str, *, generation_id: str | None = None, image_index: int = 0,
                 board_id: str | None = None, image: FileInput | None = None,
                 dwell_seconds: float = 0.0) -> FeedbackResult:
        """React to an image (save, like, skip, hide): one of your generations' outputs, or any image + a board."""
        call = calls.feedback(action, generation_id=generation_id, image_index=image_index, board_id=board_id,
                              image=image, dwell_seconds=dwell_seconds)
        return FeedbackResult.model_validate(await self._json(call))

    async def verify(self, image: FileInput, *, since: tuple[int, str] | None = None) -> VerifyResult:
        """Where an image came from (any verdict is a result, not an error)."""
        return VerifyResult.model_validate(await self._json(calls.verify(image, since)))

    async def register(
        self, image: FileInput, *, profile_hash: str, engine_version: str, seed: int, engine: str = "look",
        prompt: str = "", board_id: str | None = None, output_format: str | None = None,
    ) -> RegisteredRecord:
        """Register an output rendered on this device: the server marks, signs and logs it (``rendered_on:
        device``) and returns the marked file. Only the output image is sent."""
        call = calls.register(image, profile_hash=profile_hash, engine=engine, engine_version=engine_version,
                              seed=seed, prompt=prompt, board_id=board_id, output_format=output_format)
        return RegisteredRecord.model_validate(await self._json(call))

    async def usage(self) -> Usage:
        return Usage.model_validate(await self._json(Call("GET", "/v1/usage", safe=True)))

    async def delete_account(self) -> AccountDeleted:
        """Delete the account and everything stored of it (irreversible; needs a key with every scope)."""
        return AccountDeleted.model_validate(await self._json(Call("DELETE", "/v1/me")))

    # ------------------------------------------------------------------ on-device
    async def generate_local(
        self,
        board_id: str,
        selfies: Sequence[str | Path | np.ndarray],
        *,
        register: bool | Collection[int] = True,
        engine: str = "look",
        identity_threshold: float = 0.35,
        face_index: int | None = None,
        pipeline: Any = None,
        local_provenance: Any = None,
        progress: local.Progress | None = None,
        **request: Any,
    ) -> LocalGeneration:
        """Render on this device, register the outputs with the server (see :mod:`.local`).

        ``request`` holds the generation's options (``prompt``, ``n``, ``size``, ``aspect``, ``format`` (or
        ``output_format``),
        ``strength``, ``seed``, ``background``, ``framing``, ``mode``). Only the board id and the registered
        outputs are sent; ``register`` picks which (True: all). Outputs not registered are marked into
        ``local_provenance`` (default: this machine's own store).
        """
        from ..engines.base import GenerationRequest
        from ..pipeline import default_provenance

        if "output_format" in request:  # the API's name for the core's ``format``
            request["format"] = request.pop("output_format")
        gen_request = GenerationRequest.create(**request)
        picked = local.chosen(register, gen_request.n)
        profile = local.profile_of(await self.styleembed(board_id))
        result = await asyncio.to_thread(
            local.render, gen_request, profile, selfies, engine=engine, identity_threshold=identity_threshold,
            face_index=face_index, pipeline=pipeline, progress=progress,
        )
        args = local.register_args(result, board_id)
        n = len(result.images)
        done = 0
        gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

        async def one(im: Any) -> LocalImage:
            nonlocal done
            async with gate:
                if im.index in picked:
                    out = local.registered(im, await self.register(im.data, **args))
                else:
                    out = await asyncio.to_thread(local.marked_here, im, result,
                                                  local_provenance or default_provenance())
            if progress is not None:
                done += 1
                progress("register", done, n)
            return out

        if progress is not None:
            progress("register", 0, n)
        images = list(await asyncio.gather(*(one(im) for im in result.images)))
        return local.finish(board_id, result, images)


__all__ = ["AsyncClient"]
