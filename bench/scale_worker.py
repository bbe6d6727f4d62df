"""One ``fanout_worker`` "container" for :mod:`bench.scale`, polling SQS as Lambda does.

It imports the real app (with the parent's environment: table, queue,
endpoints, pacing settings), then loops: receive up to ten records, invoke the
handler Chalice registered with an SQS event, delete what succeeded, make the
reported failures visible again at once. It stops when its stdin closes and
prints one JSON line: targets of the records it completed, invocations, and
seconds spent inside the handler.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import boto3

from bench.suite import local_environment

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:switchboard-scale"


def main() -> None:
    local_environment()  # no EMF documents: standard output is the report to the parent
    import app as app_module

    # Nor the worker's event lines (one per batch, on standard output as on Lambda).
    logging.getLogger("switchboard.events").setLevel(logging.WARNING)
    from chalicelib.fanout_queue import decode
    from chalicelib.settings import Settings
    from switchboard_local.events import sqs_record
    from switchboard_local.testing import LambdaContext

    settings = Settings.from_environ()
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.fanout_queue_name)["QueueUrl"]
    stopping = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.read()  # the parent closes our stdin to stop us
        stopping.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    print("ready", flush=True)
    targets = invocations = 0
    busy = 0.0
    while not stopping.is_set():
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            continue
        started = time.perf_counter()
        event = {"Records": [sqs_record(message, QUEUE_ARN, "us-east-1") for message in messages]}
        answer = app_module.fanout_worker(event, LambdaContext("fanout_worker", 60))
        busy += time.perf_counter() - started
        invocations += 1
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        done = [message for message in messages if message["MessageId"] not in failed]
        targets += sum(len(decode(message["Body"]).targets) for message in done)
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(done)
            ])
        for message in messages:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
    print(json.dumps(
        {"targets": targets, "invocations": invocations, "busy_seconds": round(busy, 2)}
    ), flush=True)


if __name__ == "__main__":
    main()
