#!/usr/bin/env python3
"""An ESME played by the third-party `smpplib` (PyPI), against hotsite's lab SMSC.

Usage: smpplib_client.py HOST PORT N

Phases, all on HOST:PORT, every wait bounded:

1. bind_transceiver as hotsite with a wrong password: smpplib must raise.
2. bind_transceiver as hotsite/secret, submit N messages with
   registered_delivery=1 (every message but the last carries a
   user_message_reference), collect every submit_sm_resp and every delivery
   receipt (deliver_sm with esm_class receipt bit, receipted_message_id and
   message_state TLVs), answering each deliver_sm with deliver_sm_resp.
3. Resubmit message 0 (same destination, same user_message_reference) and
   collect its submit_sm_resp, then listen a little longer for any receipt that
   should not come (the provider dedupes the repeat, SPEC M8).
4. unbind, and record the unbind_resp status.

Prints one JSON object on stdout; errors are reported in it, not raised, so the
caller always gets a summary. Exits 0 unless the summary could not be built.
"""

import json
import socket
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

SYSTEM_ID = "hotsite"
PASSWORD = "secret"
WAIT_SECONDS = 5.0
QUIET_SECONDS = 0.6
REFERENCE_BASE = 40000


def text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def new_client(host, port):
    # A short socket timeout so that reads return and deadlines are checked;
    # on a timeout smpplib itself sends an enquire_link, which is harmless.
    return smpplib.client.Client(host, port, timeout=0.3, allow_unknown_opt_params=True)


def wrong_password(host, port):
    client = new_client(host, port)
    result = {"refused": False, "status": None, "error": None}
    try:
        client.connect()
        client.bind_transceiver(system_id=SYSTEM_ID, password="wrong")
    except smpplib.exceptions.PDUError as error:
        result["refused"] = True
        result["status"] = error.args[1] if len(error.args) > 1 else None
        result["error"] = str(error)
    except Exception as error:  # noqa: BLE001 - reported to the test
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001
            pass
    return result


class Collector:
    def __init__(self):
        self.responses = {}  # sequence -> {"status", "message_id"}
        self.receipts = []
        self.other_deliveries = []

    def on_sent(self, pdu, **_):
        self.responses[pdu.sequence] = {
            "status": int(pdu.status),
            "message_id": text(pdu.message_id),
        }

    def on_error(self, pdu):
        # A submit_sm_resp with an error status, or any other error PDU.
        if pdu.command == "submit_sm_resp":
            self.responses[pdu.sequence] = {"status": int(pdu.status), "message_id": None}
        else:
            self.other_deliveries.append({"command": pdu.command, "status": int(pdu.status)})

    def on_received(self, pdu, **_):
        entry = {
            "esm_class": int(pdu.esm_class or 0),
            "receipted_message_id": text(getattr(pdu, "receipted_message_id", None)),
            "message_state": getattr(pdu, "message_state", None),
            "short_message": text(pdu.short_message),
            "source_addr": text(pdu.source_addr),
            "destination_addr": text(pdu.destination_addr),
        }
        if entry["esm_class"] & 0x3C == 0x04:
            self.receipts.append(entry)
        else:
            self.other_deliveries.append(entry)
        return smpplib.consts.SMPP_ESME_ROK


def read_until(client, done, seconds):
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        try:
            client.read_once()
        except socket.timeout:
            continue


def submit(client, index, reference):
    params = dict(
        source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
        source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
        source_addr="PYSMPPLIB",
        dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
        dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
        destination_addr=f"4670{index:07d}",
        short_message=f"smpplib interop {index}".encode("ascii"),
        data_coding=smpplib.consts.SMPP_ENCODING_DEFAULT,
        esm_class=smpplib.consts.SMPP_MSGMODE_DEFAULT,
        registered_delivery=1,
    )
    if reference is not None:
        params["user_message_reference"] = reference
    return client.send_message(**params).sequence


def unbind(client):
    # Not smpplib's unbind(), which returns whatever PDU comes next (often the
    # enquire_link_resp to its own keep-alive): wait for the unbind_resp itself.
    client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            pdu = client.read_pdu()
        except socket.timeout:
            continue
        if pdu.command == "unbind_resp":
            return {"status": int(pdu.status)}
        if pdu.command == "deliver_sm":
            client._message_received(pdu)  # answered, so the SMSC is not left waiting
    return {"status": None, "error": "no unbind_resp"}


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    summary = {"wrong_password": wrong_password(host, port)}

    collector = Collector()
    client = new_client(host, port)
    client.set_message_sent_handler(collector.on_sent)
    client.set_message_received_handler(collector.on_received)
    client.set_error_pdu_handler(collector.on_error)
    summary["bind"] = {"ok": False, "error": None}
    try:
        client.connect()
        resp = client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        summary["bind"] = {"ok": True, "status": int(resp.status), "system_id": text(resp.system_id)}

        submits = []
        for index in range(count):
            # The last one carries no reference: the provider cannot dedupe it,
            # and must still accept it.
            reference = REFERENCE_BASE + index if index < count - 1 else None
            sequence = submit(client, index, reference)
            submits.append({"index": index, "sequence": sequence, "user_message_reference": reference})
        read_until(
            client,
            lambda: len(collector.responses) >= count and len(collector.receipts) >= count,
            WAIT_SECONDS,
        )
        for entry in submits:
            entry.update(collector.responses.get(entry["sequence"], {"status": None, "message_id": None}))
        summary["submits"] = submits
        summary["receipts"] = list(collector.receipts)

        # The resubmit: same destination and reference as message 0.
        receipts_before = len(collector.receipts)
        sequence = submit(client, 0, REFERENCE_BASE)
        read_until(client, lambda: sequence in collector.responses, WAIT_SECONDS)
        # Any receipt for the repeat would arrive within the lab's receipt delay.
        read_until(client, lambda: False, QUIET_SECONDS)
        resubmit = {"sequence": sequence, "user_message_reference": REFERENCE_BASE}
        resubmit.update(collector.responses.get(sequence, {"status": None, "message_id": None}))
        resubmit["receipts_after"] = collector.receipts[receipts_before:]
        summary["resubmit"] = resubmit
        summary["other_deliveries"] = collector.other_deliveries

        summary["unbind"] = unbind(client)
    except Exception as error:  # noqa: BLE001 - reported to the test
        summary["error"] = f"{type(error).__name__}: {error}"
    finally:
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
