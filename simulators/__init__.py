"""Simulated plant devices (OPC UA PLC, Modbus PLC, MES), fault injection and scenarios: test bed and demo."""
