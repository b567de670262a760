"""Read a table's DynamoDB stream the way the Lambda event source mapping presents it to the launcher."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def lambda_records(streams: Any, stream_arn: str, region: str = "us-east-1") -> list[dict[str, Any]]:
    """Every record now in the stream, shaped as Lambda delivers DynamoDB stream records."""
    records = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator)["Records"]:
            records.append(to_lambda_record(record, stream_arn, region))
    return records


def to_lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": data,
        "eventSourceARN": stream_arn,
    }
