"""The board core's UART link: the protocol (its one definition, shared with the host), the
UARTs, the framer and the protocol engine around the accelerator."""
