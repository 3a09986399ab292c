"""streamwrap.web and streamwrap serve on real servers, clients and browsers."""
