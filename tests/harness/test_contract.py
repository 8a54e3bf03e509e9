"""The generated contract: porter/harness/contract.py is what the C headers say, and stops being so
the moment a header changes."""

import re
import shutil

import pytest

from porter import SHIMS_DIR
from porter.harness import contract, contract_gen, protocol


def test_generated_contract_matches_the_headers():
    fresh = contract_gen.generate()
    assert contract_gen.OUTPUT.read_text() == fresh, \
        "porter/harness/contract.py is stale: run `make contract` (python -m porter.harness.contract_gen)"


@pytest.fixture
def shims(tmp_path):
    """A copy of the headers the contract comes from, to change."""
    for rel, _, _ in contract_gen.HEADERS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIMS_DIR / rel, tmp_path / rel)
    return tmp_path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_changed_struct_field_changes_the_contract(shims):
    _edit(shims / "driver-host/protocol.h", "\tuint16_t port;\n", "\tuint32_t port;\n")   # struct porter_pio_req
    changed = contract_gen.generate(shims)
    assert changed != contract_gen.OUTPUT.read_text()
    assert "PIO_REQ = struct.Struct('<IHI')" in changed and "# struct porter_pio_req (driver-host/protocol.h), 10 bytes;" in changed


def test_a_new_message_type_and_a_changed_limit_reach_python(shims):
    _edit(shims / "driver-host/protocol.h", "\tPORTER_STATS = 8,", "\tPORTER_STATS = 8,\n\tPORTER_PING = 9,")
    _edit(shims / "ddekit-linux/ddekit_linux.h", "(DDEKIT_LINUX_PAGE_SIZE * 8)", "(DDEKIT_LINUX_PAGE_SIZE * 4)")
    changed = contract_gen.generate(shims)
    assert "    PING = 9\n" in changed
    assert f"ARENA_MAP_PAGES = {contract.PAGE_SIZE * 4:#x}" in changed


def test_a_struct_with_padding_is_refused_with_its_line(shims):
    path = shims / "driver-host/protocol.h"
    _edit(path, "#endif /* PORTER_HOST_PROTOCOL_H */",
          "struct porter_padded {\n\tuint8_t a;\n\tuint32_t b;\n};\n#endif /* PORTER_HOST_PROTOCOL_H */")
    line = path.read_text().splitlines().index("\tuint32_t b;") + 1
    with pytest.raises(contract_gen.ContractError,
                       match=rf"protocol.h:{line}: struct porter_padded, field b: at offset 4 in C, 1 on the wire; "
                             r"mark the struct __attribute__\(\(packed\)\)"):
        contract_gen.generate(shims)


def test_a_field_without_a_wire_layout_is_refused(shims):
    _edit(shims / "driver-host/protocol.h", "\tuint32_t nr;\n", "\tvoid *nr;\n")
    with pytest.raises(contract_gen.ContractError, match=r"struct porter_get_device_req, field nr: type void \* "
                                                         r"has no fixed wire layout"):
        contract_gen.generate(shims)


def test_the_protocol_module_speaks_the_generated_contract():
    # the names the harness uses are the generated ones, not copies
    assert protocol.Msg is contract.Msg and protocol.MSG_HDR is contract.MSG_HDR
    assert protocol.encode(protocol.Msg.INFO, 7, b"x")[:contract.MSG_HDR.size] == \
        contract.MSG_HDR.pack(contract.MSG_MAGIC, contract.PROTO_VERSION, contract.Msg.INFO, 7, 1)
    names = re.findall(r"^    (\w+) = \d+$", contract_gen.OUTPUT.read_text(), re.M)
    assert {"SETUP", "XMIT", "PIO_WRITE", "HARNESS_GONE", "UNSUPPORTED"} <= set(names)


def test_check_mode_reports_an_up_to_date_file(capsys):
    assert contract_gen.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
