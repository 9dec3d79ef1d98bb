"""A hooklake plugin in Python: copy this folder, rename, and fill in describe() and transform_event().

Build: plugins/sdk/python/build.sh path/to/this/folder out.wasm
"""

import hooklake_plugin as hp

TABLE = "accounts"


class MyPlugin(hp.Plugin):
    def describe(self):
        # Routes: exact event names or FAMILY.*; every routed table must be declared.
        return (
            hp.Describe("my_plugin", "0.1.0")
            .route(["ACCOUNTS.*"], TABLE)
            .table(TABLE, [
                hp.col("id", hp.STRING, nullable=False),
                hp.col("status", hp.STRING),
                hp.col("platform", hp.STRING),
            ])
        )

    def transform_event(self, event):
        # One enriched event: event.event, event.data, event.resources, event.skipped, ...
        # Return an EventResult (or {table: [rows]}, or None for no rows); raise hp.EventError(msg) to send
        # this event to the dead letters. Other exceptions become that event's error too.
        result = hp.EventResult()
        for i, r in event.objects():  # EventError if a resource is not an object
            result.push(TABLE, {
                "id": hp.get_str(r, "id", required=True),
                "status": hp.get_str(r, "status"),
                "platform": hp.get_str(r, "work_platform.name"),
            })
        return result


WitWorld = hp.component(MyPlugin)  # what componentize-py calls: describe() and transform(batch)
