// libjpeg-turbo's TurboJPEG API (Debian: libturbojpeg0-dev): JPEG decoding with DCT scaling.
#include <turbojpeg.h>
