"""`make demo`: answer questions about the example clips with the bundled default model.

Loads the repository itself the way a Hub user does (`AutoModel` / `AutoProcessor` with
`trust_remote_code=True`), asks the questions listed in `examples/questions.json` and prints each
answer beside the truth that the data engine recorded for that clip, marked right or wrong by the exact
scorer of the evaluation (the answer is parsed back into facts and compared: "One in total." and "The player
potted one ball." are the same answer).

    python examples/demo.py [--model DIR] [--max-new-tokens N]
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "train"))  # the exact scorer (numpy only; no training dependencies)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json")


def missing_model_files(model_dir: Path) -> list[str]:
    return [name for name in MODEL_FILES if not (model_dir / name).is_file()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=REPO_ROOT, help="Hub-style model folder (default: this repo)"
    )
    parser.add_argument("--questions", type=Path, default=REPO_ROOT / "examples" / "questions.json")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    missing = missing_model_files(args.model)
    if missing or not args.questions.is_file():
        what = [*missing, *([] if args.questions.is_file() else [str(args.questions)])]
        print(
            "No default model to run yet: this checkout lacks " + ", ".join(what) + ".\n"
            "The bundled default model is trained by `make default-model`; until it is committed at the repo "
            "root, `make demo` has nothing to answer with and gives no answer.",
            file=sys.stderr,
        )
        return 2

    import torch
    from transformers import AutoModel, AutoProcessor

    from hilight_train.scoring import score_answer

    model = AutoModel.from_pretrained(args.model, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    questions = json.loads(args.questions.read_text())
    correct = 0
    for item in questions:
        clip = args.questions.parent / item["clip"]
        start = time.perf_counter()
        messages = [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": item["question"]}]}
        ]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=prompt, videos=str(clip), return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False)
        answer = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[
            0
        ].strip()
        seconds = time.perf_counter() - start
        right = score_answer(item["type"], item["facts"], answer)["score"] == 1.0
        correct += right
        print(f"[{item['clip']}] Q: {item['question']}")
        print(f"    model: {answer}   ({'right' if right else 'wrong'}, {seconds:.2f} s)")
        print(f"    truth: {item['answer']}")
    print(
        f"{correct}/{len(questions)} answers right (exact facts; caption questions need every event right)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
