#!/usr/bin/env python3
"""An SMSC played by the third-party `smppy` server framework (PyPI), with the
`smpppdu` codec it depends on, for hotsite's SMPP client to bind to.

Usage: python_smsc.py [PORT_FILE] [--raw-smppy] [--lifetime SECONDS]

Listens on 127.0.0.1, port 0. The first stdout line is
`{"event": "listening", "port": N}` (the port is also written to PORT_FILE when
given); every later line is one JSON event:

- `bind` (system_id, ok): binds are accepted for hotsite/secret only; others get
  smppy's generic `ESME_RBINDFAIL`.
- `submit` (source, destination, text, data_coding, registered_delivery,
  user_message_reference, message_id): answered with `submit_sm_resp` and a
  message id `py000001`, `py000002`, ...; when a receipt is asked for, a
  `deliver_sm` receipt follows on the same bind (esm_class 0x04, TLVs
  `receipted_message_id` and `message_state` DELIVERED, and the usual receipt
  text whose `id:` is a *carrier* id, unlike the message id: SPEC M13).
- `receipt_sent` (message_id), `deliver_sm_resp` (sequence, status).
- `enquire_link` (answered by smppy with `enquire_link_resp`).
- `unbind` (answered by smppy with `unbind_resp`), `connection_lost`.
- `error` (what smppy or smpppdu could not handle).

What smppy does itself: the bind_transceiver exchange (authentication through
`Application.handle_bound_client`), enquire_link answers, unbind and its
answer, the deliver_sm_resp dispatch. What this script adds, because smppy 0.3.2
cannot do it:

- Framing. smppy decodes exactly one PDU per `data_received` call, in a new task
  each time: two PDUs arriving in one TCP segment lose the second, a PDU split
  over two segments fails to decode, and PDUs may be handled out of order. Here
  the byte stream is split on `command_length` and PDUs are handed to smppy one
  at a time, in order. `--raw-smppy` turns this off (to reproduce smppy's
  behaviour).
- submit_sm: smppy answers with an empty message id and exposes neither the
  TLVs nor the registered_delivery flag, so submit_sm is decoded and answered
  here with smpppdu, and the receipt is built with smpppdu's DeliverSM.

The process exits after --lifetime seconds (default 60) so that a crashed test
run never leaves it behind.
"""

import asyncio
import io
import json
import logging
import struct
import sys
import time

import smppy
from smppy.server import SmppProtocol
from smpp.pdu.operations import DeliverSM, SubmitSM, SubmitSMResp
from smpp.pdu.pdu_encoding import PDUEncoder
from smpp.pdu.pdu_types import (
    CommandId,
    CommandStatus,
    DataCoding,
    DataCodingDefault,
    EsmClass,
    EsmClassMode,
    EsmClassType,
    MessageState,
    PriorityFlag,
    RegisteredDelivery,
    RegisteredDeliveryReceipt,
    ReplaceIfPresentFlag,
)

SYSTEM_ID = "hotsite"
PASSWORD = "secret"
HEADER = struct.Struct(">IIII")


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def as_text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


class Smsc(smppy.Application):
    def __init__(self):
        super().__init__(name="pysmsc", logger=logging.getLogger("pysmsc"))
        self.next_id = 1

    def new_message_id(self):
        message_id = f"py{self.next_id:06d}"
        self.next_id += 1
        return message_id

    async def handle_bound_client(self, client):
        ok = client.system_id == SYSTEM_ID and client.password == PASSWORD
        emit("bind", system_id=client.system_id, ok=ok)
        return client if ok else None

    async def handle_unbound_client(self, client):
        emit("unbind", system_id=getattr(client, "system_id", None))

    async def handle_sms_received(self, client, source_number, dest_number, text):
        # Not reached: submit_sm is handled by Protocol.handle_submit.
        emit("error", what="smppy handle_sms_received called", text=text)


class Protocol(SmppProtocol):
    raw_smppy = False

    def connection_made(self, transport):
        super().connection_made(transport)
        self._buffer = b""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    def connection_lost(self, exc):
        emit("connection_lost", error=None if exc is None else str(exc))
        self._worker.cancel()
        super().connection_lost(exc)

    def data_received(self, data):
        if self.raw_smppy:
            return super().data_received(data)
        self._buffer += data
        while len(self._buffer) >= 4:
            (length,) = struct.unpack(">I", self._buffer[:4])
            if length < 16 or length > 64 * 1024:
                emit("error", what=f"bad command_length {length}")
                self._transport.close()
                return
            if len(self._buffer) < length:
                break
            pdu, self._buffer = self._buffer[:length], self._buffer[length:]
            self._queue.put_nowait(pdu)

    async def _work(self):
        while True:
            data = await self._queue.get()
            try:
                (_, command_id, _, _) = HEADER.unpack(data[:16])
                if command_id == 0x00000004 and self.is_bound:  # submit_sm
                    await self.handle_submit(data)
                else:
                    await self.handle_data_received(data)
            except Exception as error:  # noqa: BLE001 - reported, session goes on
                emit("error", what=f"{type(error).__name__}: {error}", pdu=data.hex())

    async def on_enquire_link(self, request):
        emit("enquire_link", sequence=request.sequence_number)

    async def on_deliver_sm_resp(self, request):
        emit("deliver_sm_resp", sequence=request.sequence_number, status=str(request.status))

    async def handle_submit(self, data):
        pdu = PDUEncoder().decode(io.BytesIO(data))
        if pdu.command_id != CommandId.submit_sm:
            raise ValueError(f"expected submit_sm, got {pdu.command_id}")
        params = pdu.params
        message_id = self.app.new_message_id()
        self._send_response(SubmitSMResp(sequence_number=pdu.sequence_number, message_id=message_id))
        registered = params.get("registered_delivery")
        wants_receipt = registered is not None and registered.receipt != (
            RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED
        )
        emit(
            "submit",
            sequence=pdu.sequence_number,
            source=as_text(params.get("source_addr")),
            destination=as_text(params.get("destination_addr")),
            text=as_text(params.get("short_message")),
            data_coding=str(params.get("data_coding")),
            registered_delivery=str(registered),
            wants_receipt=wants_receipt,
            user_message_reference=params.get("user_message_reference"),
            message_id=message_id,
        )
        if wants_receipt:
            self.send_receipt(params, message_id)

    def send_receipt(self, submit_params, message_id):
        # The carrier's id in the text, deliberately unlike the message id.
        carrier_id = f"{7_000_000_000 + int(message_id[2:])}"
        stamp = time.strftime("%y%m%d%H%M", time.gmtime())
        body = (
            f"id:{carrier_id} sub:001 dlvrd:001 submit date:{stamp} done date:{stamp} "
            f"stat:DELIVRD err:000 text:{(as_text(submit_params.get('short_message')) or '')[:20]}"
        ).encode("ascii", "replace")
        receipt = DeliverSM(
            sequence_number=self.next_sequence_number(),
            service_type=None,
            source_addr_ton=submit_params["dest_addr_ton"],
            source_addr_npi=submit_params["dest_addr_npi"],
            source_addr=submit_params["destination_addr"],
            dest_addr_ton=submit_params["source_addr_ton"],
            dest_addr_npi=submit_params["source_addr_npi"],
            destination_addr=submit_params["source_addr"],
            esm_class=EsmClass(EsmClassMode.DEFAULT, EsmClassType.SMSC_DELIVERY_RECEIPT),
            protocol_id=None,
            priority_flag=PriorityFlag.LEVEL_0,
            registered_delivery=RegisteredDelivery(
                RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED
            ),
            replace_if_present_flag=ReplaceIfPresentFlag.DO_NOT_REPLACE,
            data_coding=DataCoding(scheme_data=DataCodingDefault.SMSC_DEFAULT_ALPHABET),
            short_message=body,
            receipted_message_id=message_id,
            message_state=MessageState.DELIVERED,
        )
        self._send_requests([receipt])
        emit("receipt_sent", message_id=message_id, carrier_id=carrier_id,
             sequence=receipt.sequence_number)


def main():
    args = sys.argv[1:]
    lifetime = 60.0
    port_file = None
    while args:
        arg = args.pop(0)
        if arg == "--raw-smppy":
            Protocol.raw_smppy = True
        elif arg == "--lifetime":
            lifetime = float(args.pop(0))
        else:
            port_file = arg
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    app = Smsc()

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Protocol(app=app), host="127.0.0.1", port=0)
        port = server.sockets[0].getsockname()[1]
        if port_file:
            with open(port_file, "w", encoding="ascii") as file:
                file.write(f"{port}\n")
        emit("listening", port=port)
        try:
            await asyncio.sleep(lifetime)
        finally:
            server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
