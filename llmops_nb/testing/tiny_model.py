"""A tiny Hugging Face causal LM built offline in seconds, for tests, demos and benchmarks.

No weights may be downloaded here, so the tests exercise the real `local/` provider and
the fine-tune worker on a model made on the spot: a byte-level BPE tokenizer trained
with `tokenizers` on a few KB of text, and a random-init two-layer Llama (~400 KB).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "LORA_TARGETS", "build_tiny_adapter", "build_tiny_model"]

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
VOCAB_SIZE = 512

# One turn per line, each closed by EOS, so a fine-tune learns to stop after its answer.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

_WORDS = (
    "the a an model prompt reply answer question support password reset account "
    "product acme hello world please thanks user system assistant upper lower "
    "cat dog tree river house light small large quick brown fox jumps over lazy"
).split()


def _corpus(seed: int) -> list[str]:
    """A few KB of deterministic text: sentences, chat turns and 'upper:' examples."""
    rng = random.Random(seed)
    lines = []
    for _ in range(120):
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 10))) + ".")
    for _ in range(60):
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 7)))
        lines.append(f"user: upper: {word}\nassistant: {word.upper()}")
    lines.append("0123456789 ,.;:!?'\"()[]{}<>-_=+*/\\@#$%^&|~`")
    return lines


def build_tiny_model(path: str | Path, *, seed: int = 0) -> Path:
    """Build and save a tiny random Llama and its tokenizer under PATH; the same seed gives
    the same files. Loads with AutoTokenizer / AutoModelForCausalLM."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    bos_id, eos_id, pad_id = (tok.token_to_id(t) for t in (BOS, EOS, PAD))
    # Plain text gets a BOS, like Llama's tokenizer; the chat template writes its own.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
        padding_side="left",
    )

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        # Wider than Llama's 0.02: outputs then depend on the prompt (better tests), and a
        # LoRA still learns small tasks quickly from it.
        initializer_range=0.1,
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG as it was
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = pad_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_adapter(
    model_path: str | Path, adapter_path: str | Path, *, seed: int = 0, r: int = 8
) -> Path:
    """Save a LoRA adapter for the model at MODEL_PATH whose B weights are non-zero (a fresh
    LoRA is a no-op), so loading it really changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model_path, adapter_path = Path(model_path).resolve(), Path(adapter_path)
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    config = LoraConfig(
        r=r, lora_alpha=2 * r, target_modules=LORA_TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft's use of deprecated names
        torch.manual_seed(seed)
        model = get_peft_model(base, config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.2)
    model.save_pretrained(adapter_path)
    return adapter_path
