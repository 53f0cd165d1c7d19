"""Why a job failed: Azure ML's run details and the end of its log, bounded and masked."""

from __future__ import annotations

import json
from pathlib import Path

from monitoring.job_failure import (
    MAX_LOG_LINES,
    category_of,
    failure_from_run_details,
    log_tail,
    main_log,
    mask_secrets,
    unavailable,
    with_log,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "contract" / "published" / "examples"


def _details() -> dict[str, object]:
    return dict(json.loads((EXAMPLES / "azureml_run_details_failed.json").read_text()))


def test_the_documented_run_details_give_code_category_and_message() -> None:
    failure = failure_from_run_details(_details())
    assert failure.code == "UserError" and failure.category == "user"
    assert failure.message is not None
    assert "CUDA out of memory" in failure.message
    assert failure.unavailable is None
    assert main_log(_details()["logFiles"]) == "user_logs/std_log.txt"  # type: ignore[arg-type]


def test_a_run_without_error_says_so_instead_of_inventing_one() -> None:
    failure = failure_from_run_details({"runId": "x", "status": "Failed", "error": None})
    assert failure.code is None and failure.message is None
    assert failure.unavailable == "Azure ML recorded no error details for this run"


def test_error_codes_map_to_who_should_act() -> None:
    assert category_of("UserError") == "user"
    assert category_of("SystemError") == "system"
    assert category_of("ServiceError") == "system"
    assert category_of("Something") == "unknown"
    assert category_of(None) == "unknown"


def test_secrets_in_log_lines_are_masked() -> None:
    sas = (
        "upload to https://st.blob.core.windows.net/c/o?sv=2019-07-07&sr=b&sig=abc%3D&se=2026"
        "&sp=r done"
    )
    masked = mask_secrets(sas)
    assert "abc%3D" not in masked and "sig=***" in masked
    assert "https://st.blob.core.windows.net/c/o" in masked and masked.endswith("done")
    assert mask_secrets("DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0;Suffix=x") == (
        "DefaultEndpointsProtocol=https;AccountKey=***;Suffix=x"
    )
    assert mask_secrets("Authorization: Bearer eyJhbGciOi.J9.sig") == "Authorization: Bearer ***"
    assert mask_secrets("db password=hunter2 ok") == "db password=*** ok"
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
    assert token not in mask_secrets(f"token {token}")


def test_the_tail_is_the_last_lines_without_colours_bounded() -> None:
    log = "\n".join(f"\x1b[32mstep {n}\x1b[0m" for n in range(100)) + "\n\n" + "x" * 1000 + "\n"
    tail = log_tail(log)
    assert len(tail) == MAX_LOG_LINES
    assert tail[-2] == "step 99"
    assert len(tail[-1]) == 200 and tail[-1].endswith("…")
    assert not any("\x1b" in line for line in tail)


def test_what_could_not_be_read_is_noted_and_what_was_read_kept() -> None:
    failure = failure_from_run_details(_details())
    noted = unavailable(failure, "the log could not be read (HTTPError)")
    assert (
        noted.code == "UserError" and noted.unavailable == "the log could not be read (HTTPError)"
    )
    logged = with_log(noted, "user_logs/std_log.txt", "a\nb\n")
    assert logged.log_tail == ("a", "b") and logged.unavailable == noted.unavailable
