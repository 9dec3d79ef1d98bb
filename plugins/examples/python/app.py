"""content_daily_metrics: one flat row per content item, for analysts.

Routed from CONTENTS.ADDED and CONTENTS.UPDATED. Each fetched resource becomes a row of `content_daily_metrics`
with the engagement counts pulled up to columns and their sum in `engagement_total`.
"""

import hooklake_plugin as hp

TABLE = "content_daily_metrics"
COUNTS = ("like_count", "comment_count", "view_count", "share_count", "save_count")


class ContentDailyMetrics(hp.Plugin):
    def describe(self):
        return (
            hp.Describe("content_daily_metrics", "0.1.0")
            .route(["CONTENTS.ADDED", "CONTENTS.UPDATED"], TABLE)
            .table(
                TABLE,
                [
                    hp.col("id", hp.STRING, nullable=False),
                    hp.col("published_at", hp.TIMESTAMP),
                    hp.col("platform", hp.STRING),
                    hp.col("format", hp.STRING),
                ]
                + [hp.col(name, hp.INT64) for name in COUNTS]
                + [
                    hp.col("watch_time_in_hours", hp.FLOAT64),
                    hp.col("engagement_total", hp.INT64),
                ],
            )
        )

    def transform_event(self, event):
        result = hp.EventResult()
        if event.skipped:
            return result  # passed on by enrich without fetching: no rows
        for i, r in event.objects():  # EventError if a resource is not an object
            try:
                row = {
                    "id": hp.get_str(r, "id", required=True),
                    "published_at": r.get("published_at"),  # the API's text; the host parses it
                    "platform": hp.get_str(r, "work_platform.name"),
                    "format": hp.get_str(r, "format"),
                }
                total = 0
                for name in COUNTS:
                    n = hp.get_int(r, "engagement." + name)
                    row[name] = n
                    if n is not None:
                        total += n
                row["watch_time_in_hours"] = hp.get_float(r, "engagement.watch_time_in_hours")
                row["engagement_total"] = total
            except hp.EventError as e:
                raise hp.EventError(f"resources[{i}] (id {r.get('id')}): {e}")
            result.push(TABLE, row)
        return result


WitWorld = hp.component(ContentDailyMetrics)
