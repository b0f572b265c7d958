"""xares 0.1.3's LLM ASR head (protocol ``"xares-0.1.3"``): the same adapter into the same frozen causal LM, with
its sequences, targets, precision and checkpoint selection as xares/models/asr.py computes them.

- Sequences (l. 78-103): the batch's audio frames zero-padded to the longest (padding masked), then
  ``[sep] text [eos]`` right-padded to the longest text, so a short clip's text sits after its padding.
- Targets (l. 63-76): the separator token is a target too (predicted from the last audio position), then the
  transcript and EOS; text padding is ignored.
- Precision (l. 116, 147): ``torch.autocast(device_type="cuda")``, i.e. float16 on a GPU, nothing on a CPU.
- Checkpoint selection (l. 124-134): on the validation split's teacher-forced argmax transcripts (each cut to
  its reference's length in characters), not on generated ones.
- Test transcripts (l. 137-162): generated greedily after ``[padded audio, sep]`` with repetition penalty 1.1.
"""

from __future__ import annotations

import numpy as np
import torch

from ..store import Frames
from .asr import _LlmHead, _batch, _clean


class Xares013LlmHead(_LlmHead):
    """:class:`~.asr._LlmHead` laid out, trained and selected as xares 0.1.3 does."""

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.autocast)

    def _inputs(self, frames: list[np.ndarray], texts: list[str], append_eos: bool):
        """``[audio padded to the longest, sep, text (eos), text padding]``: embeddings, attention mask, targets,
        and the padded audio length."""
        x, lengths = _batch(frames, self.device)
        audio = self.module(x)
        width = audio.shape[1]
        audio_mask = (torch.arange(width, device=self.device)[None, :] < torch.tensor(lengths, device=self.device)[:, None]).long()
        tokens = [[self.sep_id] + self.tokenizer(t, add_special_tokens=False)["input_ids"] + ([self.eos_id] if append_eos else [])
                  for t in texts]
        longest = max(len(t) for t in tokens)
        ids = torch.full((len(tokens), longest), self.pad_id, dtype=torch.long, device=self.device)
        text_mask = torch.zeros_like(ids)
        targets = torch.full_like(ids, -100)
        for i, t in enumerate(tokens):
            ids[i, : len(t)], text_mask[i, : len(t)], targets[i, : len(t)] = self._ids(t), 1, self._ids(t)
        inputs = torch.cat([audio, self.embed(ids).to(audio.dtype)], dim=1)
        labels = torch.cat([torch.full((len(tokens), width), -100, dtype=torch.long, device=self.device), targets], dim=1)
        return inputs, torch.cat([audio_mask, text_mask], dim=1), labels, width

    def loss(self, frames: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        with self._autocast():
            inputs, mask, labels, _ = self._inputs(frames, texts, append_eos=True)
            return self.lm(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss.float()

    def teacher_forced(self, frames: Frames | list[np.ndarray], texts: list[str], batch_size: int) -> list[str]:
        """The argmax of the LM's logits at the text positions, given the reference text, each cut to the
        reference's length in characters: xares 0.1.3's validation transcripts."""
        self.module.eval()
        out: list[str] = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), batch_size):
                batch = texts[start : start + batch_size]
                inputs, mask, _, width = self._inputs(frames[start : start + batch_size], batch, append_eos=True)
                predicted = self.lm(inputs_embeds=inputs, attention_mask=mask).logits.argmax(-1)[:, width:]
                decoded = self.tokenizer.batch_decode(predicted.tolist(), skip_special_tokens=True)
                out.extend(_clean(p[: len(t)]) for p, t in zip(decoded, batch))
        return out

    def generate_ids(self, frames: Frames | list[np.ndarray], batch_size: int, max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations of ``[audio padded to the batch's longest, sep]``, cut before the first EOS."""
        from transformers import GenerationConfig, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        generation = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                      eos_token_id=self.eos_id, pad_token_id=self.pad_id)
        penalty = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty=1.1)])
        self.module.eval()
        out: list[list[int]] = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(frames), batch_size):
                chunk = frames[start : start + batch_size]
                inputs, mask, _, _ = self._inputs(chunk, [""] * len(chunk), append_eos=False)
                generated = self.lm.generate(inputs_embeds=inputs, attention_mask=mask, generation_config=generation,
                                             logits_processor=penalty)
                for row in generated.tolist():
                    out.append(row[: row.index(self.eos_id)] if self.eos_id in row else row)
        return out
