"""The exact-answer extractor as :mod:`truthmap.labels` calls it: loaded at its first call.

Labelling greedy answers and labelling sampled answers both send their wrong answers here;
the model loads only when some answer is wrong, once for every try.
"""

from __future__ import annotations

import logging
from functools import cached_property

from truthmap import logs
from truthmap.settings import ExactAnswerSettings
from truthmap.work import Work, WorkMeter


class LazyExtractor:
    """A :data:`truthmap.labels.Extract`: the greedy first try (seeds None) or a sampled retry."""

    def __init__(self, model_dir: str, device_map: str | dict, dtype: str, cfg: ExactAnswerSettings,
                 log: logging.Logger) -> None:
        self.model_dir, self.device_map, self.dtype, self.cfg, self.log = model_dir, device_map, dtype, cfg, log
        self.work = Work()
        """The extractor's forward passes over every call (none when it never loaded)."""

    @property
    def loaded(self) -> bool:
        """Whether some call loaded the model."""
        return "_model" in self.__dict__

    @cached_property
    def _model(self):
        from truthmap.context import context_length
        from truthmap.models import ModelInfo, load_model

        info = ModelInfo.read(self.model_dir)
        max_positions = context_length(info.max_positions, info.name, self.log)
        return (info, max_positions, *load_model(self.model_dir, self.device_map, self.dtype))

    @property
    def name_and_context(self) -> tuple[str, int | None]:
        """The extractor's name and context length (loads it)."""
        info, max_positions, _, _ = self._model
        return info.name, max_positions

    def __call__(self, pairs, seeds):
        from truthmap.generation import Sampling, extract_short_answers

        info, max_positions, model, tokenizer = self._model
        cfg = self.cfg
        sampling = None if seeds is None else Sampling(cfg.temperature, cfg.top_k, seeds)
        self.log.info("extracting %d short answers with %s (%s)", len(pairs), info.name,
                      "greedy" if seeds is None else "sampled retries")
        with WorkMeter(model, self.work):
            return extract_short_answers(
                pairs, model, tokenizer, cfg.max_new_tokens, cfg.batch_size, info.has_chat_template,
                progress=logs.progress_logger(self.log, "extracted"), max_positions=max_positions, sampling=sampling,
            )
