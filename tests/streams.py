"""Read a table's DynamoDB stream the way the Lambda event source mapping presents it to the launcher."""

from __future__ import annotations

from typing import Any

from local.streams import lambda_record


def lambda_records(streams: Any, stream_arn: str, region: str = "us-east-1") -> list[dict[str, Any]]:
    """Every record now in the stream, shaped as Lambda delivers DynamoDB stream records."""
    records = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        page = streams.get_records(ShardIterator=iterator)["Records"]
        records.extend(lambda_record(record, stream_arn, region) for record in page)
    return records
