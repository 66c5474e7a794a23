"""The fleet's own certificate authority and mutual TLS between polycloud's parts.

Every replica, gateway and server holds a short-lived certificate from the fleet CA that names what it
is with a SPIFFE-style URI (`polycloud.pki.identities`). Replicas accept only TLS connections whose
client certificate the fleet CA signed for a gateway, a server or an admin, and answer their control
endpoints only to servers and admins. Nothing here touches the state store: `polycloud.server.certs`
keeps the CA there and issues; this package is the cryptography and the `ssl` contexts.
"""
