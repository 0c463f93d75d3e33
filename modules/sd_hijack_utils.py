"""A1111's `modules.sd_hijack_utils`, importable: Sumi patches no functions by name, so there is nothing here.

Extensions that only import it load; `CondFunc` (A1111's conditional monkeypatch) is not provided."""
