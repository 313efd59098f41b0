#!/usr/bin/env python3
# Run with Python 3.11.7 and exactly these packages (pip freeze of the venv:
# `pip install presidio-analyzer presidio-anonymizer`, no spaCy model):
#   annotated-doc==0.0.7
#   annotated-types==0.8.0
#   anyio==4.16.0
#   blis==1.3.4
#   catalogue==2.0.10
#   certifi==2026.10.18
#   cffi==2.1.1
#   charset-normalizer==3.5.2
#   click==8.5.1
#   cloudpathlib==0.26.0
#   confection==1.3.4
#   cryptography==50.0.2
#   cymem==2.0.16
#   filelock==4.2.11
#   h11==0.16.0
#   httpcore==1.0.9
#   httpx==0.28.1
#   idna==3.20
#   Jinja2==3.1.6
#   markdown-it-py==4.3.0
#   MarkupSafe==3.0.4
#   mdurl==0.1.2
#   murmurhash==1.0.16
#   numpy==2.4.6
#   packaging==26.3
#   phonenumbers==9.0.43
#   preshed==3.0.13
#   presidio_analyzer==2.2.366
#   presidio_anonymizer==2.2.366
#   pycparser==3.12
#   pydantic==2.14.3
#   pydantic_core==2.50.4
#   Pygments==2.21.0
#   PyYAML==6.0.3
#   regex==2026.11.15
#   requests==2.34.2
#   requests-file==3.0.1
#   rich==15.0.0
#   shellingham==1.5.4
#   smart_open==9.0.2
#   spacy==3.8.18
#   spacy-legacy==3.0.12
#   spacy-loggers==1.0.5
#   srsly==2.5.6
#   thinc==8.3.14
#   tldextract==5.4.0
#   tqdm==4.70.1
#   typer==0.29.2
#   typing-inspection==0.4.5
#   typing_extensions==4.16.0
#   urllib3==2.8.0
#   wasabi==1.1.3
#   weasel==1.0.1
#   wrapt==2.5.2
"""Runs Microsoft Presidio on a corpus written by corpus.py and scores it
the way tests/corpus.rs scores our detectors; prints one JSON object.

Usage: presidio_eval.py CORPUS.jsonl [--regions default|corpus] [--limit N]

For the benchmark, not the tests. Presidio runs without any spaCy model:
the no-op NLP engine (presidio_analyzer.nlp_engine.NoOpNlpEngine) and the
predefined recognizers, asked only for the types we compare
(EMAIL_ADDRESS, IP_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE), on every
text document and every JSON string value. Its types map to ours:
EMAIL_ADDRESS → email, IP_ADDRESS → ipv4 or ipv6 (by the presence of a
colon), PHONE_NUMBER → phone, CREDIT_CARD → card, IBAN_CODE → iban;
jwt and api_key have no Presidio recognizer and are reported as such.

A true positive is an exact (start, end, type) match (Presidio's
code-point offsets converted to UTF-8 bytes); any other result of a
compared type is a false positive, any label not found a false negative.

Throughput: UTF-8 bytes analyzed / seconds spent in AnalyzerEngine.analyze
("mb_per_s"), and / seconds in analyze plus AnonymizerEngine.anonymize with
the "replace" operator ("anonymize_mb_per_s").

--regions default keeps the phone recognizer's shipped regions (US, GB, DE,
FR, IL, IN, CA, BR); --regions corpus gives it the corpus's countries (US,
GB, DE, FR, ES, IT, NL, CH, BE, CZ).

The versions it was run with are pinned in the comment above (Python 3.11;
a venv of its own, not requirements.txt).
"""

import argparse
import json
import sys
import time
from importlib.metadata import version

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import PhoneRecognizer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

COMPARED = ["EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE"]
OURS = ["email", "ipv4", "ipv6", "phone", "card", "iban", "jwt", "api_key"]
UNSUPPORTED = ["jwt", "api_key"]
CORPUS_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CH", "BE", "CZ")


def our_type(entity_type, span_text):
    if entity_type == "IP_ADDRESS":
        return "ipv6" if ":" in span_text else "ipv4"
    return {
        "EMAIL_ADDRESS": "email",
        "PHONE_NUMBER": "phone",
        "CREDIT_CARD": "card",
        "IBAN_CODE": "iban",
    }.get(entity_type)


def engine(regions):
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    if regions == "corpus":
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(PhoneRecognizer(supported_regions=CORPUS_REGIONS))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def strings(value, path, out):
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            strings(item, f"{path}[{i}]", out)
    elif isinstance(value, dict):
        for k, v in value.items():
            strings(v, f"{path}.{k}", out)


def units(path, limit):
    """(text, {(start, end, entity)}) for every text and JSON string value."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            if doc["kind"] == "text":
                yield doc["text"], {(s["start"], s["end"], s["entity"]) for s in doc["spans"]}
            else:
                values = []
                strings(doc["json"], "$", values)
                for p, text in values:
                    truth = {
                        (s["start"], s["end"], s["entity"]) for s in doc["spans"] if s["path"] == p
                    }
                    yield text, truth


def byte_offsets(text):
    """A function from code-point offsets to UTF-8 byte offsets."""
    if text.isascii():
        return lambda i: i
    table = [0]
    for ch in text:
        table.append(table[-1] + len(ch.encode()))
    return table.__getitem__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--regions", choices=["default", "corpus"], default="default")
    ap.add_argument("--limit", type=int, default=None, help="only the first N documents")
    args = ap.parse_args()

    analyzer = engine(args.regions)
    anonymizer = AnonymizerEngine()
    operators = {"DEFAULT": OperatorConfig("replace")}

    tally = {t: {"tp": 0, "fp": 0, "fn": 0} for t in OURS}
    total_bytes = 0
    analyze_s = 0.0
    anonymize_s = 0.0
    for text, truth in units(args.corpus, args.limit):
        total_bytes += len(text.encode())
        t0 = time.perf_counter()
        results = analyzer.analyze(text=text, language="en", entities=COMPARED)
        t1 = time.perf_counter()
        anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
        t2 = time.perf_counter()
        analyze_s += t1 - t0
        anonymize_s += t2 - t1

        to_bytes = byte_offsets(text)
        found = set()
        for r in results:
            t = our_type(r.entity_type, text[r.start : r.end])
            if t is not None:
                found.add((to_bytes(r.start), to_bytes(r.end), t))
        for s in found:
            tally[s[2]]["tp" if s in truth else "fp"] += 1
        for s in truth:
            if s not in found:
                tally[s[2]]["fn"] += 1

    per_type = {}
    for t, c in tally.items():
        if t in UNSUPPORTED:
            per_type[t] = {"supported": False, "support": c["fn"]}
            continue
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_type[t] = {
            **c,
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f1, 4),
        }
    print(
        json.dumps(
            {
                "mb_per_s": round(total_bytes / analyze_s / 1e6, 4),
                "anonymize_mb_per_s": round(total_bytes / (analyze_s + anonymize_s) / 1e6, 4),
                "bytes": total_bytes,
                "seconds": round(analyze_s, 2),
                "phone_regions": args.regions,
                "per_type": per_type,
                "presidio_version": version("presidio-analyzer"),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
