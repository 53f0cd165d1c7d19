"""`notify me`: whose personal chat a failure goes to."""

from __future__ import annotations

from bot.personal_alerts import matching_people
from domain.owners import parse_owner_rules
from store.personal_alerts import PersonalAlert

ADA = PersonalAlert("oid-ada", "chat-ada", "ada.lovelace@contoso.com", "Ada Lovelace")
BO_ID = "5f1c2a3b-0000-4000-8000-00000000ab01"
BO = PersonalAlert(BO_ID, "chat-bo", None, "Bo Li")


def test_owners_by_upn_or_object_id_and_submitters_by_upn_or_name() -> None:
    rules = parse_owner_rules(["PLANT001/=ada.lovelace@contoso.com", f"PLANT002/={BO_ID.upper()}"])
    assert matching_people([ADA, BO], rules, "PLANT001/C1", None) == ["chat-ada"]
    assert matching_people([ADA, BO], rules, "plant002/c1", None) == ["chat-bo"]
    assert matching_people([ADA, BO], (), "X/Y", "Bo Li") == ["chat-bo"]
    assert matching_people([ADA, BO], (), "X/Y", "ADA.LOVELACE@contoso.com") == ["chat-ada"]
    assert matching_people([ADA, BO], (), "X/Y", "mlops-pipeline") == []
    assert matching_people([ADA], rules, "PLANT001/C1", "Ada Lovelace") == ["chat-ada"]
