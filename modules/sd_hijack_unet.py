"""A1111's `modules.sd_hijack_unet`, importable: Sumi does not patch the UNet, so there is nothing here.

Extensions that only import it load; those that patch its functions (e.g. FreeU's `th.cat`) need a
port to Sumi's own hooks."""
