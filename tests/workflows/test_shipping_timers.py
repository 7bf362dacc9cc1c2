"""ShipmentWorkflow's timers over days, on the time-skipping test server.

The activities are fakes registered under the real names, so the test is
about the workflow's waiting: automatic warehouses confirm after their delay,
manual ones wait for people however long it takes, and the carrier is asked
again until it reports the parcel delivered.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.shipping import (
    Booking,
    BookShipment,
    FulfilShipment,
    PackConfirmation,
    Packed,
    PackShipment,
    PickConfirmation,
    PickingTicket,
    ShipmentEventIn,
    ShipmentLine,
    ShipmentState,
    ShipmentStatus,
    Tracking,
    TrackShipment,
)
from workers.embedded import wheel_binary
from workflows.shipping import ShipmentWorkflow

DAY = 86_400.0


class FakeWarehouseAndCarrier:
    """A warehouse of the given kind and a carrier that delivers on the 2nd ask."""

    def __init__(self, automatic: bool) -> None:
        self.automatic = automatic
        self.tracking_asks = 0
        self.events: list[str] = []

    @activity.defn(name="start_picking")
    async def start_picking(self, request: ShipmentEventIn) -> PickingTicket:
        self.events.append(request.type)
        return PickingTicket(
            automatic=self.automatic, pick_after_seconds=3600, pack_after_seconds=1800
        )

    @activity.defn(name="record_shipment_event")
    async def record_shipment_event(self, request: ShipmentEventIn) -> None:
        self.events.append(request.type)

    @activity.defn(name="pack_shipment")
    async def pack_shipment(self, request: PackShipment) -> Packed:
        self.events.append("shipment.packed")
        return Packed(
            package_code="PKG1", weight_grams=request.shipment.weight_grams or 1
        )

    @activity.defn(name="book_shipment")
    async def book_shipment(self, request: BookShipment) -> Booking:
        self.events.append("shipment.booked")
        return Booking(
            carrier="fake",
            tracking_number="FAKE1",
            label_ref="label-1",
            check_after_seconds=DAY,
        )

    @activity.defn(name="ship_shipment")
    async def ship_shipment(self, request: BookShipment) -> Booking:
        self.events.append("shipment.shipped")
        assert request.booking is not None, "booked at packing"
        return request.booking.model_copy(update={"shipped_at": request.at})

    @activity.defn(name="track_shipment")
    async def track_shipment(self, request: TrackShipment) -> Tracking:
        self.tracking_asks += 1
        if self.tracking_asks < 2:
            return Tracking(
                delivered=False, description="in transit", check_after_seconds=DAY
            )
        return Tracking(
            delivered=True,
            delivered_at=datetime.now(UTC),
            description="delivered",
        )


@pytest.fixture(scope="module")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=wheel_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


def shipment_input() -> FulfilShipment:
    return FulfilShipment(
        order_id=str(uuid.uuid4()),
        order_number="SO-T",
        shipment=ShipmentState(
            shipment_id=str(uuid.uuid4()),
            number="SO-T-1",
            warehouse="W",
            lines=[ShipmentLine(line=1, sku="S", quantity=1)],
        ),
        country="DE",
        postal_code="10115",
    )


def worker_for(env: WorkflowEnvironment, fakes: FakeWarehouseAndCarrier) -> Worker:
    return Worker(
        env.client,
        task_queue="timers",
        workflows=[ShipmentWorkflow],
        activities=[
            fakes.start_picking,
            fakes.record_shipment_event,
            fakes.pack_shipment,
            fakes.book_shipment,
            fakes.ship_shipment,
            fakes.track_shipment,
        ],
    )


async def test_automatic_warehouse_and_polled_carrier_need_nobody(
    time_skipping: WorkflowEnvironment,
) -> None:
    fakes = FakeWarehouseAndCarrier(automatic=True)
    async with worker_for(time_skipping, fakes):
        started = await time_skipping.get_current_time()
        result = await time_skipping.client.execute_workflow(
            ShipmentWorkflow.run,
            shipment_input(),
            id=f"ship-{uuid.uuid4()}",
            task_queue="timers",
        )
        elapsed = await time_skipping.get_current_time() - started

    assert result.status == ShipmentStatus.DELIVERED
    assert fakes.tracking_asks == 2
    assert fakes.events == [
        "shipment.picking",
        "shipment.picked",
        "shipment.packed",
        "shipment.booked",
        "shipment.shipped",
        "shipment.delivered",
    ]
    # An hour to pick, half an hour to pack, a day between carrier checks.
    assert elapsed >= timedelta(hours=1, minutes=30, days=2)


async def test_manual_warehouse_waits_for_people_however_long(
    time_skipping: WorkflowEnvironment,
) -> None:
    fakes = FakeWarehouseAndCarrier(automatic=False)
    async with worker_for(time_skipping, fakes):
        handle = await time_skipping.client.start_workflow(
            ShipmentWorkflow.run,
            shipment_input(),
            id=f"ship-{uuid.uuid4()}",
            task_queue="timers",
        )
        await time_skipping.sleep(timedelta(days=30))
        waiting = await handle.query(ShipmentWorkflow.state)

        await handle.signal(
            ShipmentWorkflow.confirm_picked, PickConfirmation(actor="ann")
        )
        await handle.signal(
            ShipmentWorkflow.confirm_packed,
            PackConfirmation(actor="bob", weight_grams=5),
        )
        result = await handle.result()

    assert waiting.status == ShipmentStatus.PICKING
    assert result.status == ShipmentStatus.DELIVERED
    assert result.weight_grams == 5
