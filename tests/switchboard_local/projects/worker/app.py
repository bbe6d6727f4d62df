"""Sample project: a lambda_function queues jobs, an SQS consumer does them.

``enqueue`` sends each item of ``{"jobs": [...]}`` to the queue the template
declares; ``work`` records each job in the template's table, and reports the
jobs named "fail" as batch item failures (they reach the DLQ after one
receive); ``explode`` raises; ``results`` answers what was recorded.
"""

import os

import boto3
from chalice import Chalice

app = Chalice(app_name="worker")


@app.lambda_function(name="enqueue")
def enqueue(event, context):
    sqs = boto3.client("sqs")
    for job in event["jobs"]:
        sqs.send_message(QueueUrl=os.environ["JOBS_URL"], MessageBody=job)
    return {"queued": len(event["jobs"]), "function": context.function_name}


@app.lambda_function(name="explode")
def explode(event, context):
    raise ValueError("no such job: " + str(event.get("job")))


@app.lambda_function(name="results")
def results(event, context):
    items = boto3.resource("dynamodb").Table(os.environ["DONE_TABLE"]).scan()["Items"]
    return sorted(item["job"] for item in items)


@app.on_sqs_message(queue=os.environ.get("JOBS_QUEUE", "jobs"), batch_size=5, name="work")
def work(event):
    table = boto3.resource("dynamodb").Table(os.environ["DONE_TABLE"])
    failures = []
    for record in event:
        if record.body == "fail":
            failures.append({"itemIdentifier": record.to_dict()["messageId"]})
        else:
            table.put_item(Item={"job": record.body})
    return {"batchItemFailures": failures}
