"""Sample project: scheduled functions, at a rate and on a cron expression.

Each run appends its event to the file ``SCHEDULED_LOG`` names, in the project's
directory.
"""

import json
import os

from chalice import Chalice, Cron, Rate

app = Chalice(app_name="scheduled")


def record(name, event):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.environ["SCHEDULED_LOG"])
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps({"function": name, "event": event.to_dict()}) + "\n")


@app.schedule(Rate(1, unit=Rate.MINUTES))
def every_minute(event):
    record("every_minute", event)
    return {"ran": "every_minute", "time": event.time}


@app.schedule(Cron(0, 3, "?", "*", "MON-FRI", "*"), name="weekday_report")
def report(event):
    record("weekday_report", event)
    return {"ran": "weekday_report", "resources": event.resources}


@app.schedule("rate(1 minutes)")
def misspelled(event):  # EventBridge refuses "1 minutes": never scheduled
    record("misspelled", event)
